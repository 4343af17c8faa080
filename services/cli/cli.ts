/** The `tether` command line: dispatch to the commands, usage, exit codes. */

import packageJson from "../../package.json" with { type: "json" };
import { benchCommand, benchUsage } from "./commands/bench.ts";
import { connectCommand, connectUsage } from "./commands/connect.ts";
import { sendCommand, sendUsage } from "./commands/send.ts";
import { tokenCommand, tokenUsage } from "./commands/token.ts";
import { type CliIo, CommandError, INTERRUPTED_EXIT_CODE, Interrupted, UsageError, writeLine } from "./io.ts";
import { suggest } from "./suggest.ts";

const connectionHelp = `connection options:
  --host H          edge host (default TETHER_HOST or 127.0.0.1)
  --port P          edge device port (default TETHER_DEVICE_PORT or 3000)
  --device ID       deviceId (default: a random cli-... id; bench uses <prefix>-<n>)
  --token T         token to send in hello
  --secret S        mint the token from this secret (default TETHER_AUTH_SECRET)
  --auth MODE       hmac (default when a secret is known), jwt (HS256) or none
  --tls             connect with TLS; --tls-ca FILE trusts that CA (PEM);
                    --tls-insecure skips certificate checks
  --timeout MS      request and connect timeout`;

type Command = (args: readonly string[], io: CliIo) => Promise<number>;

interface CommandSpec {
  readonly run: Command;
  /** One line for the command list. */
  readonly summary: string;
  /** The synopsis and its options, shown by `tether <command> --help`. */
  readonly usage: string;
  /** Whether the connection options apply. */
  readonly connects: boolean;
}

const commands: Readonly<Record<string, CommandSpec>> = {
  token: {
    run: tokenCommand,
    summary: "print a device's token (auth modes hmac and jwt)",
    usage: tokenUsage,
    connects: false,
  },
  connect: {
    run: connectCommand,
    summary: "open a session as a device: type requests, see answers and pushes",
    usage: connectUsage,
    connects: true,
  },
  send: { run: sendCommand, summary: "send one request and print the answer", usage: sendUsage, connects: true },
  bench: {
    run: benchCommand,
    summary: "load test: many devices at a rate or flat out, latency percentiles",
    usage: benchUsage,
    connects: true,
  },
};

const exitCodes = "exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C)";

export const usage = `usage: tether <command> [options]

commands:
${Object.entries(commands)
  .map(([name, spec]) => `  ${name.padEnd(9)} ${spec.summary}`)
  .join("\n")}
  help      show one command's options: tether help <command> (or tether <command> --help)

options:
  -h, --help     this text
  -v, --version  print the version

${exitCodes}`;

/** What `tether <command> --help` prints. */
export function commandHelp(name: string): string | undefined {
  const spec = commands[name];
  if (spec === undefined) return undefined;
  return `usage: ${spec.usage}${spec.connects ? `\n\n${connectionHelp}` : ""}\n\n${exitCodes}`;
}

/** The package's version, printed by `tether --version`. */
export const version: string = packageJson.version;

const commandNames = [...Object.keys(commands), "help"];

/** `--help` or `-h` anywhere among a command's options (not after `--`, where it is an argument). */
function asksForHelp(args: readonly string[]): boolean {
  const end = args.indexOf("--");
  const options = end === -1 ? args : args.slice(0, end);
  return options.includes("--help") || options.includes("-h");
}

function unknownCommand(name: string): string {
  if (name.startsWith("-")) {
    const guess = suggest(name.replace(/^--?/, ""), ["help", "version"]);
    const hint = guess === undefined ? "; options go after the command" : `; did you mean --${guess}?`;
    return `tether: unknown option ${name}${hint} (see tether --help)`;
  }
  const guess = suggest(name, commandNames);
  const hint = guess === undefined ? "" : `; did you mean ${JSON.stringify(guess)}?`;
  return `tether: unknown command ${JSON.stringify(name)}${hint} (see tether --help)`;
}

/** Runs one invocation; resolves with the exit code. Never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    writeLine(io.stderr, usage);
    return 2;
  }
  if (name === "--help" || name === "-h") {
    writeLine(io.stdout, usage);
    return 0;
  }
  if (name === "--version" || name === "-v") {
    writeLine(io.stdout, version);
    return 0;
  }
  if (name === "help") {
    const [topic, ...extra] = rest;
    if (topic === undefined || topic === "help") {
      writeLine(io.stdout, usage);
      return 0;
    }
    const help = commandHelp(topic);
    if (help === undefined || extra.length > 0) {
      writeLine(io.stderr, help === undefined ? unknownCommand(topic) : "tether help: takes one command name");
      return 2;
    }
    writeLine(io.stdout, help);
    return 0;
  }
  const spec = commands[name];
  if (spec === undefined) {
    writeLine(io.stderr, unknownCommand(name));
    return 2;
  }
  if (asksForHelp(rest)) {
    writeLine(io.stdout, commandHelp(name) ?? usage);
    return 0;
  }
  try {
    return await spec.run(rest, io);
  } catch (error) {
    // Whatever failed after Ctrl-C failed because of it (a request cut short, a client closed).
    if (error instanceof Interrupted || io.signal.aborted) return INTERRUPTED_EXIT_CODE;
    if (error instanceof UsageError) {
      writeLine(io.stderr, `tether ${name}: ${error.message} (see tether ${name} --help)`);
      return 2;
    }
    if (error instanceof CommandError) {
      writeLine(io.stderr, `tether ${name}: ${error.message}`);
      return error.exitCode;
    }
    writeLine(io.stderr, `tether ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
