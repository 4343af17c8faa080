import type { KafkaSettings } from "../../config/index.ts";
import { TetherError } from "../../errors/index.ts";
import type { Logger } from "../../log/index.ts";
import type { Config } from "./native.ts";

/** The signer is loaded only for MSK IAM, so local and PLAIN set-ups never load the AWS SDK. */
async function mskToken(region: string): Promise<{ tokenValue: string; lifetime: number; principal: string }> {
  const { generateAuthToken } = await import("aws-msk-iam-sasl-signer-js");
  const { token, expiryTime } = await generateAuthToken({ region });
  return { tokenValue: token, lifetime: expiryTime, principal: "tether" };
}

/** librdkafka settings every client of this adapter shares: address, identity, security. */
export function baseConfig(settings: KafkaSettings, logger: Logger, role: string): Config {
  if (settings.brokers.length === 0) {
    throw new TetherError("invalid_config", "Kafka needs at least one bootstrap server (TETHER_KAFKA_BROKERS)");
  }
  const config: Config = {
    "bootstrap.servers": settings.brokers.join(","),
    "client.id": `${settings.clientId}-${role}`,
    "socket.keepalive.enable": true,
    "socket.nagle.disable": true,
    "log.connection.close": false,
    // Short reconnect backoff: a broker restart should not cost seconds of latency.
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 2000,
  };
  switch (settings.auth) {
    case "none":
      config["security.protocol"] = settings.ssl ? "ssl" : "plaintext";
      break;
    case "plain":
      if (settings.username === undefined || settings.password === undefined) {
        throw new TetherError("invalid_config", "Kafka PLAIN auth needs a username and a password");
      }
      config["security.protocol"] = settings.ssl ? "sasl_ssl" : "sasl_plaintext";
      config["sasl.mechanisms"] = "PLAIN";
      config["sasl.username"] = settings.username;
      config["sasl.password"] = settings.password;
      break;
    case "aws-iam": {
      const region = settings.region;
      if (region === undefined) throw new TetherError("invalid_config", "MSK IAM auth needs an AWS region");
      config["security.protocol"] = "sasl_ssl";
      config["sasl.mechanisms"] = "OAUTHBEARER";
      config.oauthbearer_token_refresh_cb = () =>
        mskToken(region).catch((error: unknown) => {
          logger.error({ err: error }, "MSK IAM token refresh failed");
          throw error;
        });
      break;
    }
  }
  return config;
}
