import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/** One file of the console as the API serves it. */
export interface ConsoleAsset {
  readonly body: Buffer;
  readonly contentType: string;
}

/** The console's files by name: `index.html`, `console.js`, `console.css`. */
export type ConsoleAssets = ReadonlyMap<string, ConsoleAsset>;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  "index.html": "text/html; charset=utf-8",
  "console.js": "text/javascript; charset=utf-8",
  "console.css": "text/css; charset=utf-8",
};

/**
 * The console, next to this module: `console/` holds the bundle `npm run build` made (dist/console
 * beside dist/admin.mjs) or, when running from source, the sources, which are then bundled in
 * memory with esbuild, as the build would.
 */
export async function loadConsoleAssets(dir: string = join(import.meta.dirname, "console")): Promise<ConsoleAssets> {
  const html = await readFile(join(dir, "index.html"));
  const built = existsSync(join(dir, "console.js"));
  const files = new Map<string, Buffer>([["index.html", html]]);
  if (built) {
    files.set("console.js", await readFile(join(dir, "console.js")));
    files.set("console.css", await readFile(join(dir, "console.css")));
  } else {
    for (const [name, body] of await bundleFromSource(join(dir, "main.ts"))) files.set(name, body);
  }
  const assets = new Map<string, ConsoleAsset>();
  for (const [name, body] of files) {
    const contentType = CONTENT_TYPES[name];
    if (contentType !== undefined) assets.set(name, { body, contentType });
  }
  return assets;
}

async function bundleFromSource(entry: string): Promise<Map<string, Buffer>> {
  // esbuild is a build tool, there only when running from a checkout: named at run time so that
  // bundling the admin API does not pull it in.
  const specifier = "esbuild";
  const esbuild = (await import(specifier)) as typeof import("esbuild");
  const result = await esbuild.build({ ...consoleBuildOptions(entry), write: false, outdir: "/console" });
  const files = new Map<string, Buffer>();
  for (const output of result.outputFiles) {
    const name = output.path.endsWith(".css") ? "console.css" : "console.js";
    files.set(name, Buffer.from(output.contents));
  }
  return files;
}

/** The esbuild options of the console bundle; scripts/build.mjs uses the same. */
export function consoleBuildOptions(entry: string) {
  return {
    entryPoints: { console: entry },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    logLevel: "warning",
    legalComments: "eof",
  } as const;
}
