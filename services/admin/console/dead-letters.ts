import { h, replace, time } from "./dom.ts";
import { describeError, type Page, type PageContext } from "./page.ts";
import type { DeadLetter, ReplayResult } from "./types.ts";

function requestSummary(request: unknown): string {
  if (typeof request !== "object" || request === null) return "–";
  const { type, id } = request as { type?: unknown; id?: unknown };
  return `${String(type)} #${String(id)}`;
}

/** `requests.dlq`: what the workers gave up on, with the error; replay one or many to `requests`. */
export function deadLettersPage(context: PageContext): Page {
  const { api } = context;
  const status = h("p", { class: "status", "data-test": "dlq-status" }, "Loading…");
  const result = h("p", { class: "result", "data-test": "replay-result" });
  const list = h("div", {});
  const selected = new Set<string>();

  const replay = async (ids: string[]): Promise<void> => {
    if (ids.length === 0) return;
    try {
      const answer = await api.call<ReplayResult>("POST", "/v1/dead-letters/replay", { ids });
      const refused = answer.refused.map((item) => `${item.id} (${item.reason})`).join(", ");
      replace(
        result,
        `Replayed ${answer.replayed.length}: ${answer.replayed.map((item) => item.id).join(", ")}`,
        refused === "" ? "" : ` · refused ${refused}`,
      );
    } catch (error) {
      replace(result, h("span", { class: "error" }, describeError(error)));
    }
  };

  const row = (letter: DeadLetter) =>
    h(
      "tr",
      { "data-letter": letter.id },
      h(
        "td",
        {},
        h("input", {
          type: "checkbox",
          "aria-label": `select ${letter.id}`,
          disabled: !letter.replayable,
          onchange: (event: Event) => {
            const box = event.target as HTMLInputElement;
            if (box.checked) selected.add(letter.id);
            else selected.delete(letter.id);
          },
        }),
      ),
      h("td", {}, h("code", {}, letter.id)),
      h("td", {}, letter.deviceId ?? "–"),
      h("td", {}, requestSummary(letter.request)),
      h("td", { class: "error-text" }, `${letter.error.name}: ${letter.error.message}`),
      h("td", {}, String(letter.attempts)),
      h("td", {}, time(letter.failedAt)),
      h(
        "td",
        {},
        h(
          "details",
          {},
          h("summary", {}, "request"),
          h("pre", {}, JSON.stringify(letter.request ?? letter.rawValue, null, 2)),
        ),
      ),
      h(
        "td",
        {},
        h(
          "button",
          {
            type: "button",
            "data-test": "replay-one",
            disabled: !letter.replayable,
            onclick: () => void replay([letter.id]),
          },
          "Replay",
        ),
      ),
    );

  const load = async (): Promise<void> => {
    try {
      const answer = await api.get<{ written: number; items: DeadLetter[] }>("/v1/dead-letters?limit=200");
      selected.clear();
      replace(status, `${answer.items.length} shown · ${answer.written} written to requests.dlq`);
      replace(
        list,
        answer.items.length === 0
          ? h("p", { class: "muted" }, "No dead letters.")
          : h(
              "table",
              { "data-test": "dead-letters" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ...["", "Id", "Device", "Request", "Error", "Attempts", "Failed at", "", ""].map((label) =>
                    h("th", {}, label),
                  ),
                ),
              ),
              h("tbody", {}, ...answer.items.map(row)),
            ),
      );
    } catch (error) {
      replace(status, h("span", { class: "error" }, describeError(error)));
    }
  };

  const element = h(
    "section",
    { "data-test": "dead-letters-page" },
    h("h2", {}, "Dead letters"),
    status,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", onclick: () => void load() }, "Refresh"),
      h(
        "button",
        { type: "button", "data-test": "replay-selected", onclick: () => void replay([...selected]) },
        "Replay selected",
      ),
    ),
    result,
    list,
  );
  void load();
  return { element, dispose() {} };
}
