/** One server-sent event. */
export interface SseMessage {
  /** `message` unless the server named it. */
  readonly event: string;
  readonly id?: string | undefined;
  readonly data: string;
}

/**
 * Parses a `text/event-stream` body (WHATWG rules: `event`, `data`, `id` fields, `:` comments,
 * blank line dispatches). `onActivity` is called for every chunk, comments included, so a
 * caller can tell a live but quiet stream from a dead one.
 */
export async function* readSse(
  body: AsyncIterable<Uint8Array>,
  onActivity?: () => void,
): AsyncGenerator<SseMessage> {
  const decoder = new TextDecoder();
  let buf = "";
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  for await (const chunk of body) {
    onActivity?.();
    buf += decoder.decode(chunk, { stream: true });
    let nl = buf.search(/\r\n|\n|\r/);
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(buf[nl] === "\r" && buf[nl + 1] === "\n" ? nl + 2 : nl + 1);
      if (line === "") {
        if (data.length > 0) yield { event: event || "message", id, data: data.join("\n") };
        event = "";
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
        else if (field === "id" && !value.includes("\0")) id = value;
      }
      nl = buf.search(/\r\n|\n|\r/);
    }
  }
}
