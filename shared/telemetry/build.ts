import manifest from "../../package.json" with { type: "json" };

/** Set by the build (esbuild `define`) to the git commit the bundle was built from. */
declare const __TETHER_GIT_COMMIT__: string | undefined;

/** Which build runs: what `tether_build_info` and the trace resource say. */
export interface BuildInfo {
  readonly version: string;
  /** Git commit, or `unknown` when neither the build nor the environment named one. */
  readonly commit: string;
  /** Node.js version, e.g. `v24.11.0`. */
  readonly node: string;
}

/**
 * The running build. `commit` is what the environment says (TETHER_GIT_COMMIT, read in config)
 * and otherwise the commit the bundle was built from.
 */
export function buildInfo(commit?: string): BuildInfo {
  const built = typeof __TETHER_GIT_COMMIT__ === "string" ? __TETHER_GIT_COMMIT__ : undefined;
  return { version: manifest.version, commit: commit ?? built ?? "unknown", node: process.version };
}
