/** `tether token <deviceId>`: prints a device's token. */

import { expiringHmacToken, hmacToken } from "../../../shared/auth/index.ts";
import { deviceIdArgument, flag, intOption, jwtToken, parse, stringOption } from "../args.ts";
import { type CliIo, UsageError, writeLine } from "../io.ts";

export const tokenUsage = `tether token <deviceId> [--secret S] [--ttl SECONDS] [--jwt]
  Prints the device's token for auth mode hmac: base64url(HMAC-SHA256(secret, deviceId)), or
  with --ttl the expiring form <exp>.<sig> (exp = now + ttl in Unix seconds, sig =
  base64url(HMAC-SHA256(secret, deviceId + "." + exp))). With --jwt, an HS256 JWT for auth
  mode jwt (sub = deviceId, exp = now + ttl, default 3600 s), signed with the key the edge
  derives from the secret. The secret comes from --secret or TETHER_AUTH_SECRET.`;

/** Longest --ttl: ten years (the edge bounds what it accepts with its own setting). */
const MAX_TTL_SEC = 10 * 365 * 24 * 3600;

export async function tokenCommand(args: readonly string[], io: CliIo): Promise<number> {
  const parsed = parse(args, { secret: { type: "string" }, jwt: { type: "boolean" }, ttl: { type: "string" } });
  if (parsed.positionals.length > 1) throw new UsageError("token takes one deviceId");
  const deviceId = deviceIdArgument(parsed.positionals[0], "deviceId");
  const secret = stringOption(parsed, "secret") ?? io.env.TETHER_AUTH_SECRET;
  if (secret === undefined || secret === "")
    throw new UsageError("a secret is needed: --secret S or TETHER_AUTH_SECRET");
  if (flag(parsed, "jwt")) {
    const ttl = intOption(parsed, "ttl", 3600, 1, MAX_TTL_SEC);
    writeLine(io.stdout, await jwtToken(secret, deviceId, ttl));
  } else if (stringOption(parsed, "ttl") !== undefined) {
    const ttl = intOption(parsed, "ttl", 0, 1, MAX_TTL_SEC);
    writeLine(io.stdout, expiringHmacToken(secret, deviceId, Math.floor(Date.now() / 1000) + ttl));
  } else {
    writeLine(io.stdout, hmacToken(secret, deviceId));
  }
  return 0;
}
