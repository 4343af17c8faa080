// Bundles each service into one ES module under dist/, for the container image.
//
//   node scripts/build.mjs
//
// The Kafka client is a native addon (librdkafka), so it stays external: the image installs
// it from dist/package.json, which this script writes with the exact versions in use here.
// Everything else, the AWS MSK IAM signer included (about 1 MB bundled), goes into the bundle.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { consoleBuildOptions } from "../services/admin/console-assets.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outdir = join(root, "dist");

/** Source entry point and bundle name of every deployable. */
const services = [
  { name: "edge", entry: "services/edge/main.ts" },
  { name: "worker", entry: "services/worker/main.ts" },
  { name: "admin", entry: "services/admin/main.ts" },
  { name: "embedded", entry: "services/embedded/main.ts" },
];

/** Packages loaded from node_modules at run time instead of being bundled. */
const external = ["@confluentinc/kafka-javascript"];

// ESM output has no `require`, `__filename` or `__dirname`, but bundled CommonJS dependencies
// use them; the banner supplies them (the two paths under private names, swapped in by `define`
// so that a module declaring its own `__dirname` keeps it).
const banner = [
  'import { createRequire as __tetherCreateRequire } from "node:module";',
  'import { dirname as __tetherDirnameOf } from "node:path";',
  'import { fileURLToPath as __tetherFileUrlToPath } from "node:url";',
  "const require = __tetherCreateRequire(import.meta.url);",
  "const __tetherFilename = __tetherFileUrlToPath(import.meta.url);",
  "const __tetherDirname = __tetherDirnameOf(__tetherFilename);",
].join("\n");

function formatSize(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
  return `${(bytes / 1024).toFixed(1)} KiB`;
}

/**
 * Files that bundled packages read from their own directory at run time. @fastify/swagger-ui
 * serves Swagger UI from `<its dir>/../static` and its logo from `<its dir>/static`; in a
 * bundle its dir is dist/, so the assets go to dist/static and the image links /app/static to it.
 */
function copyRuntimeAssets(inputs) {
  if (inputs.some((input) => input.includes("node_modules/@fastify/swagger-ui/"))) {
    cpSync(join(root, "node_modules/@fastify/swagger-ui/static"), join(outdir, "static"), { recursive: true });
    process.stdout.write("dist/static/             Swagger UI assets\n");
  }
}

/** The commit being built: TETHER_GIT_COMMIT when the build is given one, else git's HEAD. */
function gitCommit() {
  const given = process.env.TETHER_GIT_COMMIT?.trim();
  if (given) return given;
  try {
    return execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: root, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}

function installedVersion(name) {
  const manifest = join(root, "node_modules", name, "package.json");
  return JSON.parse(readFileSync(manifest, "utf8")).version;
}

const present = services.filter((service) => {
  if (existsSync(join(root, service.entry))) return true;
  process.stderr.write(`warning: ${service.entry} does not exist yet; skipping the ${service.name} bundle\n`);
  return false;
});

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

if (present.length === 0) {
  process.stderr.write("warning: no service entry points found; dist/ holds only package.json\n");
} else {
  // esbuild has already printed its errors (logLevel "warning"); exit without a stack trace.
  const result = await build({
    absWorkingDir: root,
    entryPoints: Object.fromEntries(present.map((service) => [service.name, service.entry])),
    outdir,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    target: "node24",
    format: "esm",
    sourcemap: true,
    external,
    banner: { js: banner },
    define: {
      __filename: "__tetherFilename",
      __dirname: "__tetherDirname",
      // tether_build_info's commit label; TETHER_GIT_COMMIT at run time overrides it.
      __TETHER_GIT_COMMIT__: JSON.stringify(gitCommit()),
    },
    metafile: true,
    logLevel: "warning",
    legalComments: "linked",
  }).catch(() => {
    process.stderr.write("build failed\n");
    process.exit(1);
  });
  for (const file of Object.keys(result.metafile.outputs)) {
    if (!file.endsWith(".mjs")) continue;
    const size = statSync(join(root, file)).size;
    process.stdout.write(`${relative(root, join(root, file)).padEnd(24)} ${formatSize(size).padStart(10)}\n`);
  }
  copyRuntimeAssets(Object.keys(result.metafile.inputs));
}

// The operator console: one script and one style sheet for the browser, and its page, in
// dist/console beside the admin bundles, where the admin API looks for them.
if (existsSync(join(root, "services/admin/console/main.ts"))) {
  const consoleDir = join(outdir, "console");
  const consoleBuild = await build({
    ...consoleBuildOptions(join(root, "services/admin/console/main.ts")),
    absWorkingDir: root,
    outdir: consoleDir,
    metafile: true,
  }).catch(() => {
    process.stderr.write("console build failed\n");
    process.exit(1);
  });
  cpSync(join(root, "services/admin/console/index.html"), join(consoleDir, "index.html"));
  for (const file of Object.keys(consoleBuild.metafile.outputs)) {
    const size = statSync(join(root, file)).size;
    process.stdout.write(`${relative(root, join(root, file)).padEnd(24)} ${formatSize(size).padStart(10)}\n`);
  }
}

// The runtime image installs exactly these, with their own dependencies, next to the bundles.
const runtimeManifest = {
  name: "tether-runtime",
  private: true,
  type: "module",
  dependencies: Object.fromEntries(external.map((name) => [name, installedVersion(name)])),
  allowScripts: Object.fromEntries(external.map((name) => [name, true])),
};
writeFileSync(join(outdir, "package.json"), `${JSON.stringify(runtimeManifest, null, 2)}\n`);
process.stdout.write(`dist/package.json        externals: ${external.join(", ")}\n`);
