import { resourceNames } from "../../../shared/config/index.ts";
import { silentLogger } from "../../../shared/log/index.ts";
import { createDynamoRegistry, ensureTables } from "../../../shared/registry/dynamodb/index.ts";
import { localDynamoDbSettings, uniquePrefix, useLocalCluster } from "../../harness/index.ts";
import { registryContract } from "./contract.ts";

registryContract(
  "dynamodb",
  async () => {
    const env = await useLocalCluster();
    const settings = localDynamoDbSettings(env);
    const names = resourceNames(uniquePrefix());
    const logger = silentLogger();
    await ensureTables({ settings, names, logger });
    const registry = await createDynamoRegistry({ settings, names, logger });
    return {
      registry,
      now: Date.now,
      pass: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    };
  },
  { testTimeoutMs: 60_000 },
);
