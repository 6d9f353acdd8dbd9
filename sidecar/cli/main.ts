#!/usr/bin/env node
// First: V8 flags that must hold before any code is optimized (see v8-flags.ts).
import "./v8-flags.js";
import { CommanderError } from "commander";
import { escapeText } from "../util/escape.js";
import { ApiError, detailLine } from "./api-error.js";
import { CliError } from "./cli-error.js";
import { buildProgram } from "./program.js";

/**
 * A reader that stops early (`leasehold --help | head -1`) closes the pipe: the rest of the output
 * has nowhere to go, which is not the command's failure. Other stdout faults still end it with 1.
 */
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  process.stderr.write(`leasehold: stdout: ${escapeText(err.message)}\n`);
  process.exit(1);
});

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const msg =
      err instanceof ApiError || err instanceof CliError || (err as Error).name === "ConfigError"
        ? (err as Error).message
        : ((err as Error).message ?? String(err));
    // The message may carry what a sidecar (of any version) answered: shown, never obeyed.
    // An answer with details (each failed item behind it) gets one line each, then the error.
    if (err instanceof ApiError) {
      for (const d of err.details) process.stderr.write(`  ${escapeText(detailLine(d))}\n`);
    }
    process.stderr.write(`leasehold: ${escapeText(msg.split("\n")[0] ?? "")}\n`);
    process.exitCode = 1;
  }
}

void main();
