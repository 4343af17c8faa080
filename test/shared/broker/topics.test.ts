import assert from "node:assert/strict";
import { test } from "node:test";
import { tetherTopics } from "../../../shared/broker/topics.ts";
import { resourceNames } from "../../../shared/config/index.ts";

test("the edge beacon topic has one partition and keeps its records for an hour", () => {
  const topics = tetherTopics({ names: resourceNames("x."), maxEdges: 8 });
  const edges = topics.find((topic) => topic.name === "x.edges");
  assert.deepEqual(edges?.partitions, 1);
  assert.deepEqual(edges?.config, { "retention.ms": "3600000", "cleanup.policy": "delete" });
});

test("every name of the layout is a distinct topic", () => {
  const names = tetherTopics({ names: resourceNames(""), maxEdges: 8 }).map((topic) => topic.name);
  assert.deepEqual(names.sort(), ["downlink", "edges", "events", "replies", "requests", "requests.dlq"]);
});
