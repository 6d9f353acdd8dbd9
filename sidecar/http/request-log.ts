import type { Bindings, ChildLoggerOptions, Level, LevelWithSilentOrString } from "pino";
import { type FastifyBaseLogger, type FastifyReply, type FastifyRequest, LogController } from "fastify";
import type { Logger } from "../logger.js";

/*
 * What a request logs, and what it costs when nothing is logged (issue 19). Fastify's defaults
 * wrote two lines per request at `info` ("incoming request", "request completed", the first with
 * the whole request serialized) and made a pino child logger for every request, logged or not
 * (with redaction paths, pino runs the redactor over the child's bindings).
 */

const REFUSAL = Symbol("leasehold.refusal");

interface Refused {
  [REFUSAL]?: { readonly code: string; readonly detail: string | undefined };
}

/** Notes an error answer's code (and a refusal's internal detail), for the request's one access line to say. */
export function noteRefusal(reply: FastifyReply, code: string, detail: string | undefined): void {
  (reply as Refused)[REFUSAL] = { code, detail };
}

/**
 * One access line per request, when it is answered: the request id (the request logger's
 * binding), method, URL, status, duration in ms, and for an error answer its code (a refusal's
 * internal detail too).
 * No header, body or query value is written beyond the URL, so no token can reach it; the logger's
 * redaction paths still apply to every line.
 */
export class AccessLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    const log = request.log;
    const level = error ? "error" : "info";
    if (log instanceof RequestLog && !log.isLevelEnabled(level)) return;
    const line: Record<string, unknown> = {
      method: request.method,
      url: request.url,
      statusCode: reply.statusCode,
      responseTime: Math.round(reply.elapsedTime * 100) / 100,
    };
    const refused = (reply as Refused)[REFUSAL];
    if (refused !== undefined) {
      line.code = refused.code;
      if (refused.detail !== undefined) line.detail = refused.detail;
    }
    if (error) {
      line.err = error;
      log.error(line, "request errored");
    } else log.info(line, "request completed");
  }
}

type LogArgs = [obj: unknown, msg?: string, ...args: unknown[]];

/**
 * A request's logger: the app logger's child bound to the request id, made the first time a line
 * at an enabled level is written (most requests write one line at most, many none).
 */
export class RequestLog {
  #child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly bindingsOfRequest: Bindings,
  ) {}

  #log(): Logger {
    this.#child ??= this.parent.child(this.bindingsOfRequest);
    return this.#child;
  }

  get level(): LevelWithSilentOrString {
    return (this.#child ?? this.parent).level;
  }

  set level(level: LevelWithSilentOrString) {
    this.#log().level = level;
  }

  isLevelEnabled(level: LevelWithSilentOrString): boolean {
    return (this.#child ?? this.parent).isLevelEnabled(level);
  }

  bindings(): Bindings {
    return this.#log().bindings();
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): Logger {
    return this.#log().child(bindings, options);
  }

  #write(level: Level, args: LogArgs): void {
    if (!this.isLevelEnabled(level)) return;
    (this.#log()[level] as (...a: LogArgs) => void)(...args);
  }

  fatal(...args: LogArgs): void {
    this.#write("fatal", args);
  }
  error(...args: LogArgs): void {
    this.#write("error", args);
  }
  warn(...args: LogArgs): void {
    this.#write("warn", args);
  }
  info(...args: LogArgs): void {
    this.#write("info", args);
  }
  debug(...args: LogArgs): void {
    this.#write("debug", args);
  }
  trace(...args: LogArgs): void {
    this.#write("trace", args);
  }
  silent(): void {}
}

/**
 * fastify's `childLoggerFactory`: a {@link RequestLog} (a real child at once when the route sets
 * its own level or serializers, which this app does not).
 */
export function requestLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  if (options.level !== undefined || options.serializers !== undefined)
    return parent.child(bindings, options);
  // The app's logger is pino's (buildApp's loggerInstance); RequestLog has every method fastify calls.
  return new RequestLog(parent as Logger, bindings) as unknown as FastifyBaseLogger;
}
