import type { ResourceNames } from "../config/index.ts";
import type { TopicSpec } from "./types.ts";

export interface TopicLayout {
  readonly names: ResourceNames;
  /** Partitions of `replies`: one slot per running edge, so the fleet's ceiling. */
  readonly maxEdges: number;
  /** Partitions of `requests` and `downlink`: the ceiling of worker parallelism. */
  readonly workPartitions?: number;
  readonly replicationFactor?: number;
}

/** The topics of the design with their partition counts and retention. */
export function tetherTopics(layout: TopicLayout): TopicSpec[] {
  const { names, maxEdges, workPartitions = 12, replicationFactor = -1 } = layout;
  const day = String(24 * 60 * 60 * 1000);
  const week = String(7 * 24 * 60 * 60 * 1000);
  const hour = String(60 * 60 * 1000);
  return [
    { name: names.requestsTopic, partitions: workPartitions, replicationFactor, config: { "retention.ms": day } },
    { name: names.repliesTopic, partitions: maxEdges, replicationFactor, config: { "retention.ms": day } },
    { name: names.downlinkTopic, partitions: workPartitions, replicationFactor, config: { "retention.ms": day } },
    { name: names.eventsTopic, partitions: workPartitions, replicationFactor, config: { "retention.ms": week } },
    { name: names.dlqTopic, partitions: 1, replicationFactor, config: { "retention.ms": week } },
    // Beacons matter only while fresh; readers start at the end and never commit.
    {
      name: names.edgesTopic,
      partitions: 1,
      replicationFactor,
      config: { "retention.ms": hour, "cleanup.policy": "delete" },
    },
  ];
}
