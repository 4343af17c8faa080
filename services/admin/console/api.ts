/**
 * The admin API as the console calls it: the bearer token goes in the Authorization header of
 * every call (never in a URL), and a 401 ends the session.
 */

export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, code: string, message: string) {
    super(message);
    this.name = "ApiFailure";
    this.status = status;
    this.code = code;
  }
}

export interface StreamHandlers {
  readonly onEvent: (event: string, data: string) => void;
  readonly onOpen?: () => void;
}

export class Api {
  readonly #token: string;
  readonly #onUnauthorized: () => void;

  constructor(token: string, onUnauthorized: () => void) {
    this.#token = token;
    this.#onUnauthorized = onUnauthorized;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.#token}`, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      cache: "no-store",
    });
    const text = await response.text();
    let parsed: unknown = null;
    try {
      parsed = text === "" ? null : JSON.parse(text);
    } catch {
      parsed = null;
    }
    if (!response.ok) {
      const error = (parsed ?? {}) as { code?: unknown; message?: unknown };
      const failure = new ApiFailure(
        response.status,
        typeof error.code === "string" ? error.code : "http_error",
        typeof error.message === "string" ? error.message : `HTTP ${response.status}`,
      );
      if (response.status === 401) this.#onUnauthorized();
      throw failure;
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  /**
   * Reads a Server-Sent Events stream with fetch, which (unlike EventSource) can send the token
   * in a header. Resolves when the stream ends; rejects on an HTTP error or when `signal` aborts.
   */
  async stream(path: string, handlers: StreamHandlers, signal: AbortSignal): Promise<void> {
    const response = await fetch(path, {
      headers: { authorization: `Bearer ${this.#token}`, accept: "text/event-stream" },
      cache: "no-store",
      signal,
    });
    if (!response.ok || response.body === null) {
      if (response.status === 401) this.#onUnauthorized();
      throw new ApiFailure(response.status, "stream_failed", `event stream answered HTTP ${response.status}`);
    }
    handlers.onOpen?.();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value.replace(/\r\n?/g, "\n");
      for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
        dispatch(buffer.slice(0, end), handlers);
        buffer = buffer.slice(end + 2);
      }
    }
  }
}

function dispatch(block: string, handlers: StreamHandlers): void {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length > 0) handlers.onEvent(event, data.join("\n"));
}
