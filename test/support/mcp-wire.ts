import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage, MessageExtraInfo } from "@modelcontextprotocol/sdk/types.js";

/** Which way a JSON-RPC message crossed a transport: `→` sent by this side, `←` received. */
export type WireDirection = "→" | "←";

/**
 * Wraps an MCP transport so that `onMessage` sees every JSON-RPC message it sends (`→`) and
 * receives (`←`), before the message goes on. Call it before the transport is connected: the
 * receiving side is caught by intercepting the `onmessage` handler the client installs.
 */
export function captureWire(
  transport: Transport,
  onMessage: (dir: WireDirection, message: JSONRPCMessage) => void,
): void {
  const send = transport.send.bind(transport);
  transport.send = async (message, options) => {
    onMessage("→", message);
    return send(message, options);
  };
  let handler: Transport["onmessage"];
  Object.defineProperty(transport, "onmessage", {
    configurable: true,
    get: () => handler,
    set: (h: Transport["onmessage"]) => {
      handler =
        h &&
        (<T extends JSONRPCMessage>(message: T, extra?: MessageExtraInfo) => {
          onMessage("←", message);
          h(message, extra);
        });
    },
  });
}
