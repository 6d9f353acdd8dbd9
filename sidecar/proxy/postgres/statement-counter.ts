import { MSG } from "./constants.js";
import { FrameTap } from "./frame-tap.js";

/**
 * Counts the statements in a PostgreSQL client stream for `proxy.limits`: each simple Query
 * (however many statements its text holds) and each Execute of a portal, so a prepared statement
 * run again counts again. Returns a function from a chunk to how many it completes.
 */
export function pgStatementCounter(): (chunk: Buffer) => number {
  let n = 0;
  const tap = new FrameTap(new Set([MSG.query, MSG.execute]), () => n++, 0);
  return (chunk) => {
    n = 0;
    tap.push(chunk);
    return n;
  };
}
