import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { h } from "./dom.ts";

const POINTS = 90;
/** How often the pages take a reading: the x axis spans POINTS of them, however few there are yet. */
const READING_SECONDS = 2;

/** One small live line chart: the last {@link POINTS} readings of one figure. */
export class LiveChart {
  readonly element: HTMLElement;
  readonly #plot: uPlot;
  readonly #times: number[] = [];
  readonly #values: (number | null)[] = [];
  readonly #latest: HTMLElement;
  readonly #unit: string;

  constructor(title: string, unit: string, testId: string) {
    this.#unit = unit;
    this.#latest = h("span", { class: "latest", "data-test": `${testId}-latest` }, "–");
    const canvas = h("div", { class: "plot" });
    this.element = h(
      "figure",
      { class: "chart", "data-test": testId },
      h("figcaption", {}, title, " ", this.#latest),
      canvas,
    );
    this.#plot = new uPlot(
      {
        width: 320,
        height: 140,
        legend: { show: false },
        cursor: { show: false },
        scales: {
          x: { time: true, range: (_u, _min, max) => [max - POINTS * READING_SECONDS, max] },
          y: { range: (_u, _min, max) => [0, Math.max(1e-6, max * 1.2)] },
        },
        axes: [{ size: 28 }, { size: 48 }],
        series: [{}, { label: title, stroke: "#1f6feb", width: 2, fill: "rgba(31,111,235,0.12)", spanGaps: true }],
      },
      [[], []],
      canvas,
    );
  }

  push(atMs: number, value: number | null): void {
    this.#times.push(atMs / 1000);
    this.#values.push(value);
    if (this.#times.length > POINTS) {
      this.#times.shift();
      this.#values.shift();
    }
    this.#plot.setData([this.#times, this.#values]);
    this.#latest.textContent = value === null ? "–" : `${format(value)} ${this.#unit}`;
  }

  destroy(): void {
    this.#plot.destroy();
  }
}

function format(value: number): string {
  if (value === 0) return "0";
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
