/**
 * The operator console: a login form, then the fleet, device, live event and dead letter pages.
 * The admin token lives in sessionStorage (gone when the tab closes) and only ever travels in
 * the Authorization header.
 */
import "./console.css";
import { Api } from "./api.ts";
import { deadLettersPage } from "./dead-letters.ts";
import { devicePage } from "./device.ts";
import { h, replace } from "./dom.ts";
import { eventsPage } from "./events.ts";
import { fleetPage } from "./fleet.ts";
import { describeError, type Page, type PageContext } from "./page.ts";

const TOKEN_KEY = "tether.adminToken";

const root = document.getElementById("app") as HTMLElement;
let current: Page | undefined;

function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
  current?.dispose();
  current = undefined;
  showLogin("Signed out.");
}

function showLogin(note = ""): void {
  const token = h("input", {
    type: "password",
    name: "token",
    autocomplete: "current-password",
    required: true,
    placeholder: "TETHER_ADMIN_TOKEN",
    "data-test": "token",
  });
  const message = h("p", { class: "error", "data-test": "login-error" }, note);
  const form = h(
    "form",
    {
      class: "login",
      "data-test": "login-form",
      onsubmit: (event: Event) => {
        event.preventDefault();
        const value = token.value.trim();
        void (async () => {
          try {
            // Any /v1 call proves the token; the list of edges is the cheapest.
            await new Api(value, () => {}).get("/v1/edges");
            sessionStorage.setItem(TOKEN_KEY, value);
            token.value = "";
            start(value);
          } catch (error) {
            replace(message, describeError(error));
          }
        })();
      },
    },
    h("h1", {}, "Tether console"),
    h("label", {}, "Admin token ", token),
    h("button", { type: "submit", "data-test": "sign-in" }, "Sign in"),
    message,
  );
  replace(root, form);
  token.focus();
}

function start(token: string): void {
  const api = new Api(token, () => {
    sessionStorage.removeItem(TOKEN_KEY);
    current?.dispose();
    current = undefined;
    showLogin("The admin token was refused; sign in again.");
  });
  const context: PageContext = {
    api,
    navigate: (hash) => {
      if (location.hash === hash) render(context);
      else location.hash = hash;
    },
  };
  window.onhashchange = () => render(context);
  if (location.hash === "" || location.hash === "#") location.hash = "#/fleet";
  else render(context);
}

const links = [
  ["#/fleet", "Fleet"],
  ["#/device", "Device"],
  ["#/events", "Live events"],
  ["#/dead-letters", "Dead letters"],
] as const;

function render(context: PageContext): void {
  current?.dispose();
  const [, section = "fleet", argument] = location.hash.split("/").map((part) => decodeURIComponent(part));
  switch (section) {
    case "device":
      current = devicePage(context, argument);
      break;
    case "events":
      current = eventsPage(context, argument);
      break;
    case "dead-letters":
      current = deadLettersPage(context);
      break;
    default:
      current = fleetPage(context);
  }
  const nav = h(
    "nav",
    {},
    h("strong", { class: "brand" }, "Tether"),
    ...links.map(([href, label]) =>
      h("a", { href, class: href === `#/${section}` ? "active" : undefined, "data-nav": href.slice(2) }, label),
    ),
    h("button", { type: "button", class: "link", "data-test": "sign-out", onclick: signOut }, "Sign out"),
  );
  replace(root, nav, h("main", {}, current.element));
}

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved === null) showLogin();
else start(saved);
