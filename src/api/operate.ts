// The API calls that operate running plugins: Update (limits), Stats (one
// Tasks.Metrics call per shard) and Exec (a process in a plugin's container).
import type * as grpc from '@grpc/grpc-js';
import { invalidInput as invalid } from '../common/errors.js';
import { hasResources, pickResources, resourcesProblem, type Resources } from '../common/resources.js';
import type { Coordinator, PluginInfo } from '../coordinator/index.js';
import { toTimestamp } from './wire.js';

type Unary = <Req, Res>(fn: (req: Req) => Promise<Res>) => grpc.handleUnaryCall<Req, Res>;

export function operateHandlers(co: Coordinator, unary: Unary, pluginMessage: (p: PluginInfo) => Record<string, unknown>): grpc.UntypedServiceImplementation {
  return {
    Update: unary(async (req: { id: string; resources: Resources | null }) => {
      const r = pickResources(req.resources);
      if (!hasResources(r)) throw invalid(`plugin ${req.id}: nothing to update: give --memory, --cpus or --pids-limit`);
      const problem = resourcesProblem(r);
      if (problem) throw invalid(`plugin ${req.id}: ${problem}`);
      return pluginMessage(await co.update(req.id, r));
    }),
    Stats: unary(async (req: { ids: string[] }) => ({
      stats: (await co.stats(req.ids)).map((m) => ({
        id: m.id,
        cpuNs: m.cpuNs,
        memoryBytes: m.memoryBytes,
        ...(m.memoryLimitBytes !== undefined ? { memoryLimitBytes: m.memoryLimitBytes } : {}),
        pids: m.pids,
        readAt: m.readAtMs === undefined ? null : toTimestamp(m.readAtMs),
      })),
    })),
  };
}
