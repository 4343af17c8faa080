/** `tether send <type> [json]`: one request, prints the answer. */

import { isTetherRequestError, TetherClient } from "../../../shared/sdk/index.ts";
import {
  clientOptions,
  connectionOptions,
  connectionSettings,
  deviceOption,
  jsonArgument,
  parse,
  stringOption,
} from "../args.ts";
import { connectFirst } from "../connecting.ts";
import { type CliIo, CommandError, UsageError, writeLine } from "../io.ts";

export const sendUsage = `tether send <type> [json] [--id ID] [connection options]
  Sends one request and prints the answer's body as JSON. Exit code 0 on an answer,
  1 on an error answer or a failure (printed on stderr as "tether send: error <code>: <message>",
  or "tether send: cannot connect to ..." when the first connection attempt fails).`;

export async function sendCommand(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parse(args, { ...connectionOptions, id: { type: "string" } });
  const [type, json, ...rest] = parsed.positionals;
  if (type === undefined) throw new UsageError("send needs a request type, e.g. tether send echo '{\"a\":1}'");
  if (rest.length > 0) throw new UsageError("send takes a type and at most one JSON body (quote the JSON)");
  const body = jsonArgument(json, "the body");
  const settings = connectionSettings(parsed, io);
  const deviceId = deviceOption(parsed);
  const id = stringOption(parsed, "id");

  const client = new TetherClient(await clientOptions(settings, deviceId, { reconnect: false }));
  // Ctrl-C while waiting for the answer: closing the client rejects the request at once.
  const onAbort = (): void => void client.close();
  io.signal.addEventListener("abort", onAbort, { once: true });
  try {
    await connectFirst(client, settings, io.signal);
    const answer = await client.request(type, body, { ...(id === undefined ? {} : { id }) });
    writeLine(io.stdout, JSON.stringify(answer));
    return 0;
  } catch (error) {
    if (isTetherRequestError(error)) {
      if (error.code === "invalid_request") throw new UsageError(error.message);
      throw new CommandError(`error ${error.code}: ${error.message}`);
    }
    throw error;
  } finally {
    io.signal.removeEventListener("abort", onAbort);
    await client.close();
  }
}
