/** "Did you mean ...?" for a mistyped command or option name. */

import leven from "leven";

/** Shortest input that a prefix match is offered for: `--d` says too little to guess from. */
const MIN_PREFIX = 3;

/**
 * The candidate the user most likely meant by `input`, or undefined when none is close. A
 * candidate that `input` begins (`--dev` for `--device`) wins, the shortest if several do;
 * otherwise the nearest by edit distance, when that distance is small enough to be a typo:
 * one edit for words up to three letters, else two, or a third of the word if that is more.
 */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  if (input === "" || candidates.includes(input)) return undefined;
  if (input.length >= MIN_PREFIX) {
    const extended = candidates.filter((candidate) => candidate.startsWith(input));
    extended.sort((a, b) => a.length - b.length);
    const [shortest, next] = extended;
    if (shortest !== undefined && (next === undefined || next.length > shortest.length)) return shortest;
  }
  const limit = Math.max(input.length <= 3 ? 1 : 2, Math.floor(input.length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    const distance = leven(input, candidate, { maxDistance: bestDistance });
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}
