/**
 * Resolves the Kafka broker jars from Maven Central into the local cache (a no-op when they are
 * there), so that test runs need no network. Run by `.ci/run`; `npm test` does it on demand.
 */
import { dynamoJar } from "../../test/harness/dynamodb.ts";
import { ensureKafkaLibs } from "../../test/harness/kafka.ts";

const libs = await ensureKafkaLibs((line) => process.stdout.write(`${line}\n`));
process.stdout.write(`Kafka broker jars: ${libs}\nDynamoDB Local jar: ${dynamoJar().jar}\n`);
