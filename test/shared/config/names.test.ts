import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigReader, readCommonConfig, resourceNames, slotGroup } from "../../../shared/config/index.ts";

test("reply slot groups keep the names edges have committed under, so their offsets carry over", () => {
  assert.equal(slotGroup(resourceNames(""), 0), "edge-slot-0");
  assert.equal(slotGroup(resourceNames(""), 63), "edge-slot-63");
  assert.equal(slotGroup(resourceNames("x."), 7), "x.edge-slot-7");
  assert.equal(slotGroup(resourceNames("stage-"), 1), "stage-edge-slot-1");
});

test("the slot group prefix with a wildcard matches every slot group and nothing of the other groups", () => {
  const names = resourceNames("x.");
  const pattern = new RegExp(`^${names.slotGroupPrefix.replaceAll(".", "\\.")}.*$`);
  assert.ok(pattern.test(slotGroup(names, 12)));
  assert.ok(!pattern.test(names.workersGroup));
  assert.ok(!pattern.test(names.routerGroup));
});

test("the worker and router groups follow the prefix", () => {
  assert.deepEqual([resourceNames("").workersGroup, resourceNames("").routerGroup], ["workers", "router"]);
  assert.deepEqual([resourceNames("x.").workersGroup, resourceNames("x.").routerGroup], ["x.workers", "x.router"]);
});

test("the environment's names are the prefix's names, with table names the stack may set", () => {
  const common = readCommonConfig(
    new ConfigReader({ TETHER_NAME_PREFIX: "x.", TETHER_EDGES_TABLE: "Stack-Edges-1" }),
    "test",
  );
  assert.deepEqual(common.names, { ...resourceNames("x."), edgesTable: "Stack-Edges-1" });
});
