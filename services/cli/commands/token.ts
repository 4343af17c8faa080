/** `tether token <deviceId>`: prints a device's token. */

import { hmacToken } from "../../../shared/auth/index.ts";
import { deviceIdArgument, flag, intOption, jwtToken, parse, stringOption } from "../args.ts";
import { type CliIo, UsageError, writeLine } from "../io.ts";

export const tokenUsage = `tether token <deviceId> [--secret S] [--jwt [--ttl SECONDS]]
  Prints the device's token: base64url(HMAC-SHA256(secret, deviceId)) for auth mode hmac, or
  with --jwt an HS256 JWT (sub = deviceId, exp = now + ttl, default 3600 s) for auth mode jwt.
  The secret comes from --secret or TETHER_AUTH_SECRET.`;

export async function tokenCommand(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parse(args, { secret: { type: "string" }, jwt: { type: "boolean" }, ttl: { type: "string" } });
  if (parsed.positionals.length > 1) throw new UsageError("token takes one deviceId");
  const deviceId = deviceIdArgument(parsed.positionals[0], "deviceId");
  const secret = stringOption(parsed, "secret") ?? io.env.TETHER_AUTH_SECRET;
  if (secret === undefined || secret === "")
    throw new UsageError("a secret is needed: --secret S or TETHER_AUTH_SECRET");
  if (flag(parsed, "jwt")) {
    const ttl = intOption(parsed, "ttl", 3600, 1, 10 * 365 * 24 * 3600);
    writeLine(io.stdout, await jwtToken(secret, deviceId, ttl));
  } else {
    if (stringOption(parsed, "ttl") !== undefined) throw new UsageError("--ttl goes with --jwt");
    writeLine(io.stdout, hmacToken(secret, deviceId));
  }
  return 0;
}
