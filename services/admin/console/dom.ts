/** A few DOM helpers: the console builds its pages from these, never from HTML strings. */

type Child = Node | string | number | null | undefined | false;
type Attributes = Record<string, string | number | boolean | EventListener | undefined>;

/** An element with attributes (`on*` keys become listeners) and children (strings become text). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

export function append(parent: Node, children: readonly Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything in `parent` with `children`. */
export function replace(parent: Node, ...children: Child[]): void {
  while (parent.firstChild !== null) parent.removeChild(parent.firstChild);
  append(parent, children);
}

export function time(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

/** "in 4 s", "12 s ago": for lease expiries and connection ages. */
export function relative(ms: number, now: number = Date.now()): string {
  const seconds = Math.round((ms - now) / 1000);
  const size = Math.abs(seconds);
  const text = size < 120 ? `${size} s` : size < 7200 ? `${Math.round(size / 60)} min` : `${Math.round(size / 3600)} h`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

/** A definition list of label/value pairs. */
export function facts(rows: ReadonlyArray<readonly [string, Child]>, testId?: string): HTMLDListElement {
  const list = h("dl", { class: "facts", "data-test": testId });
  for (const [label, value] of rows) append(list, [h("dt", {}, label), h("dd", { "data-field": label }, value)]);
  return list;
}

/** A table from a header row and body rows. */
export function table(head: readonly string[], rows: readonly Child[][], testId?: string): HTMLTableElement {
  return h(
    "table",
    { "data-test": testId },
    h("thead", {}, h("tr", {}, ...head.map((label) => h("th", {}, label)))),
    h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((cell) => h("td", {}, cell))))),
  );
}
