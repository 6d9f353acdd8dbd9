import { isAbsolute } from "node:path";
import { z } from "zod";

/** The longest a DBA may let one command run. */
export const MAX_TIMEOUT_SECONDS = 600;

/** Connection settings of an `exec` resource: the command leasehold runs. Unknown keys are refused. */
export const execConfig = z.strictObject({
  /**
   * The program and its fixed arguments, run without a shell: `["/opt/bin/rotate-mainframe", "--prod"]`.
   * The program is an absolute path. Secrets never go here: leasehold sends them on stdin.
   */
  command: z
    .array(
      z
        .string()
        .min(1)
        .refine((arg) => !arg.includes("\0"), "must not contain NUL"),
    )
    .min(1, "must name the program to run")
    .superRefine((argv, ctx) => {
      const program = argv[0];
      if (program !== undefined && !isAbsolute(program)) {
        ctx.addIssue({ code: "custom", path: [0], message: "must be an absolute path (no PATH lookup)" });
      }
    }),
  /** Seconds before the command's whole process group is killed (a retryable failure). @default 30 */
  timeoutSeconds: z.number().int().min(1).max(MAX_TIMEOUT_SECONDS).default(30),
  /**
   * The command's entire environment besides PATH (nothing of leasehold's own environment,
   * such as VAULT_TOKEN, is passed on). Not for secrets: a process's environment is readable
   * by its user. PATH may be overridden here. @default { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" }
   */
  env: z
    .record(
      z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "environment variable names are letters, digits and _"),
      z.string().refine((v) => !v.includes("\0"), "must not contain NUL"),
    )
    .optional(),
  /** Working directory, absolute. @default the program's folder */
  cwd: z
    .string()
    .refine((dir) => isAbsolute(dir), "must be an absolute path")
    .optional(),
});

/** A validated `exec` target (defaults applied). */
export type ExecTarget = z.output<typeof execConfig>;
