/** Entry point of the `tether` command line (bin/tether.mjs loads this through tsx). */

import { runCli } from "./cli.ts";
import { INTERRUPTED_EXIT_CODE } from "./io.ts";

/** How long a command may take to stop (close its connections, print its report) after Ctrl-C. */
const INTERRUPT_GRACE_MS = 5000;

const abort = new AbortController();
let interrupts = 0;
process.on("SIGINT", () => {
  interrupts += 1;
  // The first Ctrl-C stops the command cleanly (bench still reports); a second one leaves at once.
  if (interrupts > 1) process.exit(INTERRUPTED_EXIT_CODE);
  abort.abort();
  // Stopping cleanly is bounded: past this, the first Ctrl-C is enough on its own.
  setTimeout(() => process.exit(INTERRUPTED_EXIT_CODE), INTERRUPT_GRACE_MS).unref();
});

const code = await runCli(process.argv.slice(2), {
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  signal: abort.signal,
});
process.exitCode = code;
// Nothing should be left running; if something is (a socket a bug left open), do not hang.
setTimeout(() => process.exit(code), 2000).unref();
