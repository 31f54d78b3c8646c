// The API calls that operate running plugins: Update (limits), Stats (one
// Tasks.Metrics call per shard) and Exec (a process in a plugin's container,
// its output streamed).
import type * as grpc from '@grpc/grpc-js';
import { invalidInput as invalid } from '../common/errors.js';
import { hasResources, pickResources, resourcesProblem, type Resources } from '../common/resources.js';
import type { Coordinator, PluginInfo } from '../coordinator/index.js';
import { toTimestamp } from './wire.js';
import { envProblem } from '../common/limits.js';

interface Handlers {
  unary: <Req, Res>(fn: (req: Req) => Promise<Res>) => grpc.handleUnaryCall<Req, Res>;
  serverStream: <Req>(fn: (call: grpc.ServerWritableStream<Req, unknown>) => Promise<void>) => grpc.handleServerStreamingCall<Req, unknown>;
}

interface ExecCall {
  id: string;
  args: string[];
  env: string[];
}

export function operateHandlers(co: Coordinator, { unary, serverStream }: Handlers, pluginMessage: (p: PluginInfo) => Record<string, unknown>): grpc.UntypedServiceImplementation {
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
    // Output as it comes, then the exit status; a client that goes away kills the process.
    Exec: serverStream(async (call: grpc.ServerWritableStream<ExecCall, unknown>) => {
      const { id, args, env } = call.request;
      const envBad = envProblem(env);
      if (envBad) throw invalid(`plugin ${id}: ${envBad}`);
      const abort = new AbortController();
      const gone = (): void => abort.abort(new Error('the client went away'));
      // Cancelled by the client, or ended by plugind's close.
      call.on('cancelled', gone);
      call.on('error', gone);
      const write = (stream: string, data: Buffer): Promise<void> | undefined => {
        if (call.writableEnded || abort.signal.aborted) return undefined;
        if (call.write({ stream, data })) return undefined;
        return new Promise<void>((resolve) => {
          call.once('drain', resolve);
          abort.signal.addEventListener('abort', () => resolve(), { once: true });
        });
      };
      try {
        const exitStatus = await co.exec({ id, args, env }, { write, signal: abort.signal });
        if (!call.writableEnded) call.write({ exited: true, exitStatus });
      } finally {
        call.off('cancelled', gone);
        call.off('error', gone);
      }
    }),
  };
}
