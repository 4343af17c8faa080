import type { Api } from "./api.ts";

/** What a page is given: the API and a way to go to another page. */
export interface PageContext {
  readonly api: Api;
  readonly navigate: (hash: string) => void;
}

/** A page on screen; `dispose` stops its timers and streams when the operator leaves it. */
export interface Page {
  readonly element: HTMLElement;
  dispose(): void;
}

export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return typeof code === "string" ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}
