/** The `tether` command line: dispatch to the commands, usage, exit codes. */

import { benchCommand, benchUsage } from "./commands/bench.ts";
import { connectCommand, connectUsage } from "./commands/connect.ts";
import { sendCommand, sendUsage } from "./commands/send.ts";
import { tokenCommand, tokenUsage } from "./commands/token.ts";
import { type CliIo, CommandError, UsageError, writeLine } from "./io.ts";

const connectionHelp = `connection options (connect, send, bench):
  --host H          edge host (default TETHER_HOST or 127.0.0.1)
  --port P          edge device port (default TETHER_DEVICE_PORT or 3000)
  --device ID       deviceId (default: a random cli-... id; bench uses <prefix>-<n>)
  --token T         token to send in hello
  --secret S        mint the token from this secret (default TETHER_AUTH_SECRET)
  --auth MODE       hmac (default when a secret is known), jwt (HS256) or none
  --tls             connect with TLS; --tls-ca FILE trusts that CA (PEM);
                    --tls-insecure skips certificate checks
  --timeout MS      request and connect timeout`;

export const usage = `usage: tether <command> [options]

commands:
${[tokenUsage, connectUsage, sendUsage, benchUsage].map((u) => `  ${u.replace(/\n/g, "\n  ")}`).join("\n\n")}

${connectionHelp}

exit codes: 0 success, 1 failure, 2 usage error`;

type Command = (args: readonly string[], io: CliIo) => Promise<number>;

const commands: Readonly<Record<string, Command>> = {
  token: tokenCommand,
  connect: connectCommand,
  send: sendCommand,
  bench: benchCommand,
};

/** Runs one invocation; resolves with the exit code. Never throws. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    writeLine(name === undefined ? io.stderr : io.stdout, usage);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    writeLine(io.stderr, `tether: unknown command ${JSON.stringify(name)}\n\n${usage}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    writeLine(io.stdout, usage);
    return 0;
  }
  try {
    return await command(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      writeLine(io.stderr, `tether ${name}: ${error.message}\nrun "tether --help" for usage`);
      return 2;
    }
    if (error instanceof CommandError) {
      writeLine(io.stderr, error.message);
      return error.exitCode;
    }
    writeLine(io.stderr, `tether ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
