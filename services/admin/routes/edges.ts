import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { leaseLive } from "../../../shared/registry/index.ts";
import type { RouteDeps } from "../deps.ts";
import {
  bearerSecurity,
  busyError,
  commonErrors,
  EdgeDevicePage,
  EdgeDevicesQuery,
  EdgeList,
  EdgeParams,
} from "../schemas.ts";

/** The fleet: live edges and the devices each holds. */
export const edgeRoutes: FastifyPluginAsyncTypebox<{ deps: RouteDeps }> = async (app, { deps }) => {
  app.get(
    "/edges",
    {
      schema: {
        operationId: "listEdges",
        summary: "List live edges",
        description: "Edges whose slot lease has not expired, by slot.",
        tags: ["fleet"],
        security: bearerSecurity,
        response: { 200: EdgeList, 429: busyError, ...commonErrors },
      },
    },
    async () => {
      const leases = await deps.registry.leases.list();
      const now = deps.now();
      const edges = leases
        .filter((lease) => leaseLive(lease, now))
        .sort((a, b) => a.slot - b.slot)
        .map((lease) => ({
          edgeId: lease.edgeId,
          slot: lease.slot,
          host: lease.host,
          startedAt: lease.startedAt,
          leaseUntil: lease.leaseUntil,
          connections: lease.connections ?? null,
        }));
      return { edges };
    },
  );

  app.get(
    "/edges/:edgeId/devices",
    {
      schema: {
        operationId: "listEdgeDevices",
        summary: "List one edge's devices",
        description:
          "Connection records naming the edge, a page at a time. Records of an edge that died stay listed until they are replaced.",
        tags: ["fleet"],
        security: bearerSecurity,
        params: EdgeParams,
        querystring: EdgeDevicesQuery,
        response: { 200: EdgeDevicePage, 429: busyError, ...commonErrors },
      },
    },
    async (request) => {
      const { edgeId } = request.params;
      const { limit, cursor } = request.query;
      const page = await deps.registry.connections.listByEdge(
        edgeId,
        cursor === undefined ? { limit } : { limit, cursor },
      );
      return {
        edgeId,
        items: page.items.map((record) => ({
          deviceId: record.deviceId,
          connId: record.connId,
          slot: record.slot,
          epoch: record.epoch,
          connectedAt: record.connectedAt,
          protocol: record.protocol ?? "ndjson",
        })),
        ...(page.cursor === undefined ? {} : { cursor: page.cursor }),
      };
    },
  );
};
