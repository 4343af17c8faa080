import { h, replace, time } from "./dom.ts";
import { describeError, type Page, type PageContext } from "./page.ts";
import type { PresenceEvent } from "./types.ts";

const MAX_ROWS = 500;
const RETRY_MS = 2000;

/** Presence events as they happen (SSE from the `events` topic), filterable by device. */
export function eventsPage(context: PageContext, initialFilter: string | undefined): Page {
  const filterInput = h("input", {
    name: "deviceId",
    placeholder: "all devices",
    value: initialFilter ?? "",
    "data-test": "events-filter",
  });
  const status = h("p", { class: "status", "data-test": "events-status" }, "Connecting…");
  const rows = h("tbody", { "data-test": "events-rows" });
  const element = h(
    "section",
    { "data-test": "events-page" },
    h("h2", {}, "Live events"),
    h(
      "form",
      {
        class: "inline",
        onsubmit: (event: Event) => {
          event.preventDefault();
          const id = filterInput.value.trim();
          context.navigate(id === "" ? "#/events" : `#/events/${encodeURIComponent(id)}`);
        },
      },
      filterInput,
      h("button", { type: "submit", "data-test": "events-apply" }, "Filter"),
    ),
    status,
    h(
      "table",
      { "data-test": "events" },
      h(
        "thead",
        {},
        h("tr", {}, ...["At", "Device", "Event", "Reason", "Connection", "Edge"].map((label) => h("th", {}, label))),
      ),
      rows,
    ),
  );
  const abort = new AbortController();
  const filter = initialFilter?.trim() ?? "";

  const add = (event: PresenceEvent): void => {
    const row = h(
      "tr",
      { "data-event": event.event, "data-device": event.deviceId, "data-reason": event.reason ?? "" },
      h("td", {}, time(event.at)),
      h("td", {}, h("a", { href: `#/device/${encodeURIComponent(event.deviceId)}` }, event.deviceId)),
      h("td", {}, h("span", { class: event.event === "connected" ? "ok" : "muted" }, event.event)),
      h("td", {}, event.reason ?? ""),
      h("td", {}, h("code", {}, event.connId)),
      h("td", {}, event.edgeId),
    );
    rows.insertBefore(row, rows.firstChild);
    while (rows.childElementCount > MAX_ROWS) rows.lastElementChild?.remove();
  };

  const run = async (): Promise<void> => {
    const query = new URLSearchParams({ backlog: "50" });
    if (filter !== "") query.set("deviceId", filter);
    while (!abort.signal.aborted) {
      try {
        await context.api.stream(
          `/v1/events/stream?${query.toString()}`,
          {
            onOpen: () =>
              replace(status, h("span", { class: "ok" }, "live"), filter === "" ? "" : ` · device ${filter}`),
            onEvent: (name, data) => {
              if (name === "presence") add(JSON.parse(data) as PresenceEvent);
            },
          },
          abort.signal,
        );
        if (!abort.signal.aborted) replace(status, "Stream ended; reconnecting…");
      } catch (error) {
        if (abort.signal.aborted) return;
        replace(status, h("span", { class: "error" }, describeError(error)), " · reconnecting…");
      }
      await new Promise((done) => setTimeout(done, RETRY_MS));
      // Reconnecting sends the backlog again: start from a clean table.
      replace(rows);
    }
  };
  void run();

  return {
    element,
    dispose() {
      abort.abort();
    },
  };
}
