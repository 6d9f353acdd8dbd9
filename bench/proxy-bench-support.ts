import { spawn } from "node:child_process";

/** Runs a benchmark tool; rejects with its stderr when it exits non-zero. */
export function tool(file: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: process.env.HOME ?? "/tmp", LANG: "C", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.once("close", (code) =>
      code === 0
        ? resolve(`${out}\n${err}`)
        : reject(new Error(`${file} exited ${code}: ${err.slice(-500)}`)),
    );
  });
}

/** The value at quantile `q` (0..1) of `xs`. */
export function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}

export function fmt(n: number, digits = 1): string {
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/** Starts two things at once; if either fails, the other is stopped before the error is thrown. */
export async function startBoth<A, B>(
  a: Promise<A>,
  b: Promise<B>,
  stop: { a: (x: A) => Promise<unknown>; b: (x: B) => Promise<unknown> },
): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === "fulfilled" && rb.status === "fulfilled") return [ra.value, rb.value];
  if (ra.status === "fulfilled") await stop.a(ra.value);
  if (rb.status === "fulfilled") await stop.b(rb.value);
  throw ra.status === "rejected" ? ra.reason : (rb as PromiseRejectedResult).reason;
}
