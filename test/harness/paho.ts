/** Python's paho-mqtt for the MQTT client tests: the interpreter that has it, and the test client. */
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { repoRoot } from "./kafka.ts";

/** The test client script (`paho-client.py <port> <deviceId> <token> <5|3> <request|push>`). */
export const PAHO_SCRIPT = join(repoRoot, "test", "services", "edge", "paho-client.py");

/** CI puts paho-mqtt in a venv and names its python; locally the same cached venv when present. */
export function pahoPython(): string {
  const named = process.env.TETHER_TEST_PYTHON;
  if (named !== undefined && named !== "") return named;
  const cached = join(
    process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"),
    "tether",
    "paho-mqtt-2.1.0",
    "bin",
    "python",
  );
  return existsSync(cached) ? cached : "python3";
}
