#!/usr/bin/env node
// The `tether` command: runs services/cli/main.ts through tsx's loader, in this process.
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

register({ tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)) });
await import("../services/cli/main.ts");
