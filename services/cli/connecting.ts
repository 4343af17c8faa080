/** A command's first connection to the edge: one attempt decides, and Ctrl-C stops the wait. */

import {
  ClientErrorCode,
  type ConnectionInfo,
  type DisconnectInfo,
  isTetherRequestError,
  type TetherClient,
} from "../../shared/sdk/index.ts";
import { CommandError, Interrupted } from "./io.ts";

/** Where the command connects, for its error message. */
export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
}

/**
 * Connects `client` and resolves with the edge's `welcome`. The client may reconnect later, but
 * its first attempt is final: one that ends before `welcome` (refused, timed out, unauthorized)
 * closes the client and rejects with a one-line {@link CommandError}, instead of retrying
 * against a wrong port for ever. An abort of `signal` (Ctrl-C) closes it and rejects with
 * {@link Interrupted}.
 */
export async function connectFirst(
  client: TetherClient,
  target: ConnectTarget,
  signal: AbortSignal,
): Promise<ConnectionInfo> {
  if (signal.aborted) {
    await client.close();
    throw new Interrupted();
  }
  let failure: DisconnectInfo | undefined;
  const onDisconnected = (info: DisconnectInfo): void => {
    if (info.wasOpen) return;
    failure ??= info;
    void client.close();
  };
  const onAbort = (): void => void client.close();
  client.on("disconnected", onDisconnected);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    return await client.connect();
  } catch (error) {
    await client.close();
    if (signal.aborted) throw new Interrupted();
    throw new CommandError(`cannot connect to ${target.host}:${target.port}: ${why(error, failure, target)}`);
  } finally {
    client.off("disconnected", onDisconnected);
    signal.removeEventListener("abort", onAbort);
  }
}

/** The reason a first attempt failed, in words: the edge's refusal, else what the socket saw. */
function why(error: unknown, failure: DisconnectInfo | undefined, target: ConnectTarget): string {
  if (
    isTetherRequestError(error) &&
    error.code !== ClientErrorCode.Closed &&
    error.code !== ClientErrorCode.ConnectFailed
  ) {
    return `${error.code}: ${error.message}`;
  }
  const socketError = failure?.error as (Error & { code?: unknown }) | undefined;
  switch (socketError?.code) {
    case "ECONNREFUSED":
      return "connection refused (nothing listens on that port)";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `host ${target.host} not found`;
    case "ECONNRESET":
      return "the connection was reset before the edge said welcome";
    default:
      if (socketError !== undefined) return socketError.message;
  }
  if (failure === undefined) return error instanceof Error ? error.message : String(error);
  switch (failure.reason) {
    case "connect_timeout":
      return `no welcome within ${target.timeoutMs} ms (--timeout)`;
    case "socket_closed":
      return "the edge closed the connection before welcome";
    default:
      return failure.reason;
  }
}
