import { memoryFleet } from "../edge/helpers.ts";
import { adminEndToEnd } from "./e2e.ts";

adminEndToEnd(
  "in-memory broker and registry",
  async () => {
    const fleet = await memoryFleet(4);
    return {
      ...fleet,
      workerEnv: { TETHER_ENV: "development" },
      close: () => fleet.registry.close(),
    };
  },
  { deliveryMs: 3000, suiteTimeoutMs: 60_000 },
);
