/**
 * The TypeScript device SDK for Tether (protocol v1, see PROTOCOL.md).
 *
 * ```ts
 * import { TetherClient } from "./shared/sdk/index.ts";
 * const client = new TetherClient({ host: "localhost", port: 3000, deviceId: "dev-1" });
 * await client.connect();
 * console.log(await client.request("echo", { hello: "world" }));
 * await client.close();
 * ```
 */

export {
  ClientStatus,
  type ConnectionInfo,
  type DisconnectInfo,
  type DisconnectReason,
  type Push,
  type PushHandler,
  type ReconnectOptions,
  type RequestOptions,
  type SdkLogger,
  TetherClient,
  type TetherClientEvents,
  type TetherClientOptions,
} from "./client.ts";
export { ClientErrorCode, isTetherRequestError, TetherRequestError, type TetherRequestErrorOptions } from "./errors.ts";
