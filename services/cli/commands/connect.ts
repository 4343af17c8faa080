/** `tether connect`: an interactive session (or a scripted one, with stdin a pipe). */

import { randomBytes } from "node:crypto";
import { createInterface, type Interface } from "node:readline";
import { isTetherRequestError, TetherClient } from "../../../shared/sdk/index.ts";
import { clientOptions, connectionOptions, connectionSettings, deviceOption, parse } from "../args.ts";
import { connectFirst } from "../connecting.ts";
import { type CliIo, INTERRUPTED_EXIT_CODE, UsageError, writeLine } from "../io.ts";

export const connectUsage = `tether connect [--device ID] [connection options]
  Opens a session as a device. Type one command per line:
    <type> [json]   send a request (json defaults to null), e.g.  echo {"hello":"world"}
    ping            send a ping
    help            this list
    quit            say bye and leave (also Ctrl-D)
  Answers and pushes are printed as they come: "res <id> <json>", "error <id> <code>: <message>",
  "push <id> <type> <json>". Pushes are acked automatically. With stdin a pipe, the session ends
  when the input ends and every request has its answer. A first connection that fails ends the
  command (exit 1); on a terminal, a connection lost later is retried. Ctrl-C leaves (exit 130).`;

const HELP = `commands: <type> [json] | ping | help | quit`;

export async function connectCommand(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parse(args, connectionOptions);
  if (parsed.positionals.length > 0)
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  const settings = connectionSettings(parsed, io, 30_000);
  const deviceId = deviceOption(parsed);
  const interactive = io.stdin.isTTY === true;
  // On a terminal, output that arrives while the user types is printed above the prompt line.
  let rl: Interface | undefined;
  const print = (stream: NodeJS.WritableStream, text: string): void => {
    if (rl === undefined || !interactive) {
      writeLine(stream, text);
      return;
    }
    io.stdout.write("\r\u001b[2K");
    writeLine(stream, text);
    rl.prompt(true);
  };
  const out = (text: string): void => print(io.stdout, text);
  const note = (text: string): void => print(io.stderr, text);

  const connectTimeoutMs = Math.min(settings.timeoutMs, 10_000);
  const client = new TetherClient(
    await clientOptions(settings, deviceId, {
      connectTimeoutMs,
      reconnect: interactive ? { initialMs: 200, maxMs: 5000, jitter: 1 } : false,
    }),
  );
  client.on("connected", (info) =>
    note(
      `connected to ${settings.host}:${settings.port} as ${deviceId} (edge ${info.edgeId}, connection ${info.connId})`,
    ),
  );
  client.onPush((push) => out(`push ${push.id} ${push.type} ${JSON.stringify(push.body)}`));

  // The first attempt is final: a wrong port or token says so now instead of retrying for ever.
  await connectFirst(client, { ...settings, timeoutMs: connectTimeoutMs }, io.signal);
  // From here on a lost connection is retried (on a terminal) and reported as it happens.
  client.on("disconnected", (info) => {
    if (info.reason === "closed") return;
    const detail = info.error === undefined ? "" : ` (${info.error.message})`;
    note(
      info.willReconnect
        ? `disconnected: ${info.reason}${detail}; reconnecting in ${info.retryInMs ?? 0} ms`
        : `disconnected: ${info.reason}${detail}`,
    );
  });
  client.on("replaced", () => note("another connection of this device took over"));
  client.on("error", (error) => note(`error: ${isTetherRequestError(error) ? `${error.code}: ` : ""}${error.message}`));
  if (interactive) note(HELP);

  // Ids unique to this session: a repeat of an id within the worker's dedupe window gets the old answer.
  const session = randomBytes(3).toString("hex");
  let counter = 0;
  const inFlight = new Set<Promise<void>>();
  let failures = 0;
  const track = (work: Promise<void>): void => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  };

  rl = interactive
    ? createInterface({ input: io.stdin, output: io.stdout, terminal: true, prompt: "> " })
    : createInterface({ input: io.stdin, terminal: false });
  const lines = rl;
  const prompt = (): void => {
    if (interactive) lines.prompt();
  };
  let quitting = false;
  let interrupted = false;
  prompt();
  const onAbort = (): void => {
    interrupted = true;
    lines.close();
  };
  // A terminal in raw mode delivers Ctrl-C to readline, not as a signal.
  lines.on("SIGINT", onAbort);
  io.signal.addEventListener("abort", onAbort, { once: true });

  for await (const rawLine of lines) {
    const line = rawLine.trim();
    if (line === "") {
      prompt();
      continue;
    }
    const space = line.search(/\s/);
    const word = space === -1 ? line : line.slice(0, space);
    const rest = space === -1 ? "" : line.slice(space + 1).trim();
    if ((word === "quit" || word === "exit") && rest === "") {
      quitting = true;
      break;
    }
    if (word === "help" && rest === "") {
      note(HELP);
    } else if (word === "ping" && rest === "") {
      track(
        client.ping().then(
          (rtt) => out(`pong ${rtt.toFixed(1)} ms`),
          (error: unknown) => {
            failures++;
            out(`error ping: ${describe(error)}`);
          },
        ),
      );
    } else {
      let body: unknown = null;
      let valid = true;
      if (rest !== "") {
        try {
          body = JSON.parse(rest);
        } catch {
          valid = false;
          failures++;
          note(`not sent: the body must be JSON (strings in quotes), got ${rest}`);
        }
      }
      if (valid) {
        counter += 1;
        const sent = sendRequest(client, `${session}-${counter}`, word, body, out);
        track(
          sent.then((ok) => {
            if (!ok) failures++;
          }),
        );
      }
    }
    prompt();
  }
  io.signal.removeEventListener("abort", onAbort);
  lines.off("SIGINT", onAbort);
  if (!quitting && !interrupted) await Promise.allSettled([...inFlight]);
  await client.close();
  if (interrupted) return INTERRUPTED_EXIT_CODE;
  return failures > 0 && !interactive ? 1 : 0;
}

async function sendRequest(
  client: TetherClient,
  id: string,
  type: string,
  body: unknown,
  out: (text: string) => void,
): Promise<boolean> {
  try {
    const answer = await client.request(type, body, { id });
    out(`res ${id} ${JSON.stringify(answer)}`);
    return true;
  } catch (error) {
    if (isTetherRequestError(error)) {
      out(`error ${id} ${error.code}: ${error.message}`);
    } else {
      out(`error ${id}: ${describe(error)}`);
    }
    return false;
  }
}

function describe(error: unknown): string {
  if (isTetherRequestError(error)) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
