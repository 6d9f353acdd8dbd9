import { leasesInOrder, Selection, type WatchState } from "./watch-state.js";

const ESC = String.fromCharCode(27);
/** One key: an escape sequence (arrow keys) or one character (built from a string: the linter refuses ESC in a regex literal). */
const KEY = new RegExp(`${ESC}\\[[0-9;]*[A-Za-z~]|${ESC}O[A-Za-z]|[\\s\\S]`, "g");

/** Splits what a terminal sent into keys (an arrow key is one escape sequence). */
export function keysOf(chunk: string): string[] {
  return chunk.match(KEY) ?? [];
}

const UP = new Set([`${ESC}[A`, `${ESC}OA`, "k"]);
const DOWN = new Set([`${ESC}[B`, `${ESC}OB`, "j"]);
const QUIT = new Set(["q", "Q", "\x03"]);

export interface WatchKeysOptions {
  readonly state: WatchState;
  /** Revokes one lease by id; without it `r` does nothing. */
  readonly revoke?: ((leaseId: string) => Promise<unknown>) | undefined;
  /** Something shown changed (the selection, the last line). */
  readonly changed: () => void;
  /** `q` or Ctrl-C. */
  readonly quit: () => void;
}

/**
 * The operator's keys in the watch view: up/down or k/j move the selection, `r` asks to revoke
 * the selected lease and only `y` goes ahead, `q` or Ctrl-C (raw mode sends it as a key) quits.
 * `footer` is the view's last line: the keys, the question, or how the last revoke went.
 */
export class WatchKeys {
  private readonly selection = new Selection();
  private asking: string | undefined;
  footer: string;

  constructor(private readonly o: WatchKeysOptions) {
    this.footer = o.revoke ? "up/down or k/j select  r revoke  q quit" : "q quit";
  }

  /** The selected lease's id, re-anchored on the leases as they are now. */
  selected(): string | undefined {
    return this.selection.resolve(this.ids());
  }

  /** Handles what the terminal sent (several keys at once included). */
  readonly onData = (chunk: Buffer | string): void => {
    for (const key of keysOf(chunk.toString())) this.press(key);
  };

  press(key: string): void {
    if (key === "\x03" || (this.asking === undefined && QUIT.has(key))) {
      this.asking = undefined;
      this.o.quit();
      return;
    }
    if (this.asking !== undefined) {
      const id = this.asking;
      this.asking = undefined;
      if (key === "y" || key === "Y") this.revoke(id);
      else this.footer = `not revoked: ${id}`;
    } else if (UP.has(key) || DOWN.has(key)) {
      this.selection.move(this.ids(), UP.has(key) ? -1 : 1);
    } else if ((key === "r" || key === "R") && this.o.revoke) {
      this.ask();
    } else return;
    this.o.changed();
  }

  private ids(): string[] {
    return leasesInOrder(this.o.state).map((l) => l.id);
  }

  private ask(): void {
    const id = this.selected();
    const lease = id === undefined ? undefined : this.o.state.leases.get(id);
    if (!lease) {
      this.footer = "no lease selected";
      return;
    }
    this.asking = lease.id;
    this.footer = `revoke lease ${lease.id} of ${lease.resource}/${lease.account} (agent ${lease.agent})? [y/N]`;
  }

  private revoke(id: string): void {
    const run = this.o.revoke;
    if (!run) return;
    this.footer = `revoking ${id} ...`;
    run(id).then(
      () => {
        this.footer = `revoked ${id}`;
        this.o.changed();
      },
      (err: unknown) => {
        this.footer = `revoke ${id} failed: ${(err as Error).message}`;
        this.o.changed();
      },
    );
  }
}
