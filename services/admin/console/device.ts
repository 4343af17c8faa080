import { ApiFailure } from "./api.ts";
import { facts, h, replace, table, time } from "./dom.ts";
import { describeError, type Page, type PageContext } from "./page.ts";
import type { Device, OutboxItem, PresenceEvent } from "./types.ts";

function eventRow(event: PresenceEvent) {
  return [
    time(event.at),
    h("span", { class: event.event === "connected" ? "ok" : "muted" }, event.event),
    event.reason ?? "",
    h("code", {}, event.connId),
    event.edgeId,
    event.epoch === undefined ? "" : String(event.epoch),
  ];
}

function outboxRow(item: OutboxItem) {
  return [
    h("code", {}, item.messageId),
    item.kind,
    h("code", { class: "json" }, JSON.stringify(item.frame)),
    time(item.createdAt),
    time(item.expiresAt),
  ];
}

/** One device: where it is connected, what happened to it lately, what waits for it; push and kick. */
export function devicePage(context: PageContext, initialId: string | undefined): Page {
  const { api } = context;
  const idInput = h("input", {
    name: "deviceId",
    placeholder: "device id",
    required: true,
    pattern: "[A-Za-z0-9._:\\-]{1,128}",
    value: initialId ?? "",
    "data-test": "device-id",
  });
  const details = h("div", { "data-test": "device-details" });
  const element = h(
    "section",
    { "data-test": "device-page" },
    h("h2", {}, "Device"),
    h(
      "form",
      {
        class: "inline",
        "data-test": "lookup-form",
        onsubmit: (event: Event) => {
          event.preventDefault();
          context.navigate(`#/device/${encodeURIComponent(idInput.value.trim())}`);
        },
      },
      idInput,
      h("button", { type: "submit" }, "Look up"),
    ),
    details,
  );

  const show = async (deviceId: string): Promise<void> => {
    replace(details, h("p", { class: "status" }, "Loading…"));
    const path = `/v1/devices/${encodeURIComponent(deviceId)}`;
    let device: Device | null = null;
    let lookupNote: Node | string = "";
    try {
      device = await api.get<Device>(path);
    } catch (error) {
      if (!(error instanceof ApiFailure && error.code === "device_not_found")) {
        replace(details, h("p", { class: "error" }, describeError(error)));
        return;
      }
      lookupNote = h(
        "p",
        { class: "muted", "data-test": "device-status" },
        "No connection record: never connected, or its last connection closed.",
      );
    }
    const [events, outbox] = await Promise.allSettled([
      api.get<{ events: PresenceEvent[] }>(`${path}/events?limit=20`),
      api.get<{ items: OutboxItem[] }>(`${path}/outbox`),
    ]);
    const pushResult = h("p", { class: "result", "data-test": "push-result" });
    const kickResult = h("p", { class: "result", "data-test": "kick-result" });
    const typeInput = h("input", { name: "type", value: "note", required: true, "data-test": "push-type" });
    const bodyInput = h("textarea", { name: "body", rows: 3, "data-test": "push-body" }, '{"text":"hello"}');
    const ttlInput = h("input", {
      name: "ttl",
      type: "number",
      min: 1,
      max: 604800,
      value: 3600,
      "data-test": "push-ttl",
    });
    const pushForm = h(
      "form",
      {
        class: "stack",
        "data-test": "push-form",
        onsubmit: (event: Event) => {
          event.preventDefault();
          void (async () => {
            let body: unknown;
            try {
              body = JSON.parse(bodyInput.value);
            } catch {
              replace(pushResult, h("span", { class: "error" }, "The body is not valid JSON."));
              return;
            }
            try {
              const accepted = await api.call<{ messageId: string; online: boolean }>("POST", `${path}/messages`, {
                type: typeInput.value.trim(),
                body,
                ttlSeconds: Number(ttlInput.value),
              });
              replace(
                pushResult,
                `Accepted: ${accepted.messageId} (${accepted.online ? "device online" : "kept in the outbox"})`,
              );
            } catch (error) {
              replace(pushResult, h("span", { class: "error" }, describeError(error)));
            }
          })();
        },
      },
      h("label", {}, "Type ", typeInput),
      h("label", {}, "Body (JSON) ", bodyInput),
      h("label", {}, "TTL (seconds) ", ttlInput),
      h("button", { type: "submit", "data-test": "push-send" }, "Push"),
    );
    const kickButton = h(
      "button",
      {
        class: "danger",
        "data-test": "kick",
        disabled: device === null || !device.online,
        onclick: () => {
          void (async () => {
            try {
              const kicked = await api.call<{ connId: string }>("DELETE", `${path}/connection`);
              replace(kickResult, `Kick sent to connection ${kicked.connId}.`);
            } catch (error) {
              replace(kickResult, h("span", { class: "error" }, describeError(error)));
            }
          })();
        },
      },
      "Kick",
    );
    replace(
      details,
      h("h3", {}, deviceId),
      device === null
        ? lookupNote
        : facts(
            [
              [
                "Status",
                h(
                  "span",
                  { class: device.online ? "ok" : "muted", "data-test": "device-status" },
                  device.online ? "online" : "offline",
                ),
              ],
              ["Edge", h("code", {}, device.edgeId)],
              ["Slot", String(device.slot)],
              ["Connection", h("code", { "data-test": "device-conn" }, device.connId)],
              ["Connected at", time(device.connectedAt)],
              ["Epoch", device.epoch === undefined ? "–" : String(device.epoch)],
              ["Protocol", h("code", { "data-test": "device-protocol" }, device.protocol ?? "ndjson")],
            ],
            "device-facts",
          ),
      h("div", { class: "actions" }, kickButton, kickResult),
      h("h3", {}, "Push"),
      pushForm,
      pushResult,
      h("h3", {}, "Recent presence events"),
      events.status === "fulfilled"
        ? events.value.events.length === 0
          ? h("p", { class: "muted" }, "None held.")
          : table(
              ["At", "Event", "Reason", "Connection", "Edge", "Epoch"],
              events.value.events.map(eventRow),
              "device-events",
            )
        : h("p", { class: "error" }, describeError(events.reason)),
      h("h3", {}, "Outbox"),
      outbox.status === "fulfilled"
        ? outbox.value.items.length === 0
          ? h("p", { class: "muted", "data-test": "outbox-empty" }, "Empty.")
          : table(["Message", "Kind", "Frame", "Created", "Expires"], outbox.value.items.map(outboxRow), "outbox")
        : h("p", { class: "error" }, describeError(outbox.reason)),
      h("p", {}, h("button", { type: "button", onclick: () => void show(deviceId) }, "Refresh")),
    );
  };

  if (initialId !== undefined && initialId !== "") void show(initialId);
  return { element, dispose() {} };
}
