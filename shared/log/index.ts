import { type Logger, type LoggerOptions, pino } from "pino";

export type { Logger } from "pino";

/** Paths that must never reach a log line. */
export const redactedPaths: readonly string[] = [
  "token",
  "*.token",
  "authorization",
  "*.authorization",
  "req.headers.authorization",
  "adminToken",
  "*.adminToken",
  "secret",
  "*.secret",
];

export interface CreateLoggerOptions {
  readonly name: string;
  readonly level?: string;
  /** Where to write; stdout when omitted. */
  readonly destination?: NodeJS.WritableStream;
}

/**
 * Creates the process's root logger: pino JSON with secrets redacted. Only `main.ts` files call
 * this; code in `shared/` takes a logger from its caller.
 */
export function createLogger(options: CreateLoggerOptions): Logger {
  const pinoOptions: LoggerOptions = {
    name: options.name,
    level: options.level ?? "info",
    redact: { paths: [...redactedPaths], censor: "[redacted]" },
    base: { pid: process.pid },
  };
  return options.destination === undefined ? pino(pinoOptions) : pino(pinoOptions, options.destination);
}

/** A logger that drops everything; for tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
