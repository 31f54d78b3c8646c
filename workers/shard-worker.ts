// A shard worker: one thread that owns a containerd connection, the executor
// of the plugin ids that hash to its shard, their stdio copy loops and its
// metrics. The coordinator talks to it through piscina tasks (see
// src/coordinator/protocol.ts); exits are pushed back on parentPort.
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { pino } from 'pino';
import { CodedError, ErrorCode, errorCode } from '../src/common/errors.js';
import { connect, type ContainerdClient } from '../src/containerd/index.js';
import type {
  LogsControl,
  LogsMessage,
  Result,
  ShardPush,
  ShardReplies,
  ShardRequest,
  WireError,
  WorkerConfig,
} from '../src/coordinator/protocol.js';
import { FdLedger } from '../src/coordinator/fd-ledger.js';
import { shardOf } from '../src/coordinator/shard-map.js';
import { Executor, type LogChunk } from '../src/executor/index.js';
import { ShardMetrics, nowMs } from './metrics.js';

const config = workerData as WorkerConfig;
const log = pino({ level: config.logLevel, base: { shard: config.shard } });

interface State {
  client: ContainerdClient;
  executor: Executor;
  metrics: ShardMetrics;
}

let state: Promise<State> | undefined;
let restored: Promise<ShardReplies['init']> | undefined;

function start(): Promise<State> {
  state ??= (async () => {
    const client = connect({ address: config.address, namespace: config.namespace });
    let executor!: Executor;
    const metrics = new ShardMetrics(config.shard, () => executor.list());
    executor = new Executor({
      client,
      dataDir: config.dataDir,
      owns: (id) => shardOf(id, config.shards) === config.shard,
      name: `shard${config.shard}`,
      fdHooks: new FdLedger(config.fdLedger),
      onBytes: (stream, n) => metrics.bytes(stream, n),
      onDropped: (stream, n) => metrics.dropped(stream, n),
      onLogWriteError: (errno) => metrics.logWriteError(errno),
      logger: log,
      onExit: (exit) => {
        let restart = 'no';
        try {
          restart = executor.status(exit.id).settings.restart;
        } catch {
          /* removed at exit (autoRemove) */
        }
        const push: ShardPush = { kind: 'exit', shard: config.shard, exit, restart };
        parentPort?.postMessage(push);
      },
    });
    return { client, executor, metrics };
  })();
  return state;
}

/** Restores this shard's plugins once; every other request waits for it. */
function init(): Promise<ShardReplies['init']> {
  restored ??= start().then(async ({ executor }) => {
    const counts = await executor.restoreAll();
    log.info(counts, 'shard restored');
    return counts;
  });
  return restored;
}

function toWire(err: unknown): WireError {
  const e = err instanceof Error ? err : new Error(String(err));
  const out: WireError = { code: errorCode(err), message: e.message };
  if (e.stack) out.stack = e.stack;
  return out;
}

async function streamLogs(executor: Executor, req: Extract<ShardRequest, { kind: 'logs' }>): Promise<null> {
  const port: MessagePort = req.port;
  const ac = new AbortController();
  let credit = 0;
  let wake: (() => void) | undefined;
  port.on('message', (m: LogsControl) => {
    if (m.kind === 'credit') credit += m.bytes;
    else ac.abort();
    wake?.();
  });
  port.on('close', () => {
    ac.abort();
    wake?.();
  });
  const send = (m: LogsMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  try {
    const opts: Parameters<Executor['logs']>[1] = { follow: req.follow, signal: ac.signal };
    if (req.stream) opts.stream = req.stream;
    if (req.tail !== undefined) opts.tail = req.tail;
    for await (const chunk of executor.logs(req.id, opts) as AsyncIterable<LogChunk>) {
      while (credit < chunk.data.length && !ac.signal.aborted) await new Promise<void>((r) => (wake = r));
      if (ac.signal.aborted) break;
      credit -= chunk.data.length;
      // A private copy whose buffer can be moved, not copied, to the main thread.
      const data = Uint8Array.prototype.slice.call(chunk.data);
      send({ kind: 'chunk', chunk: { stream: chunk.stream, data: Buffer.from(data.buffer) } }, [data.buffer]);
    }
    send({ kind: 'end' });
  } catch (err) {
    send({ kind: 'error', error: toWire(err) });
  } finally {
    port.close();
  }
  return null;
}

async function dispatch(req: ShardRequest): Promise<unknown> {
  if (req.kind === 'crash') {
    if (!config.testHooks) throw new CodedError(ErrorCode.FailedPrecondition, 'crash is a test hook and is disabled');
    // An uncaught exception, as a bug would raise: the thread dies.
    setImmediate(() => {
      throw new Error(`shard ${config.shard}: crash requested (test hook)`);
    });
    return null;
  }
  if (req.kind === 'init') return init();
  await init();
  const { executor, metrics } = await start();

  switch (req.kind) {
    case 'create': {
      const res = await executor.create(req.id, req.spec, req.settings, { replace: req.replace });
      return { ...res, startedAtMs: nowMs() };
    }
    case 'recreate':
      return executor.recreate(req.id);
    case 'status':
      return executor.status(req.id);
    case 'list':
      return executor.list();
    case 'signal':
      return { delivered: await executor.signal(req.id, req.signal) };
    case 'stop':
      return executor.stop(req.id, req.timeoutMs);
    case 'remove':
      await executor.remove(req.id, { force: req.force });
      return null;
    case 'logs':
      return streamLogs(executor, req);
    case 'event':
      executor.handleEvent(req.event);
      return null;
    case 'reconcile':
      return executor.restoreAll();
    case 'metrics':
      return metrics.registry.getMetricsAsJSON();
    case 'shutdown': {
      if (req.stopPlugins) await Promise.allSettled(executor.list().map((p) => (p.state === 'stopped' ? undefined : executor.stop(p.id))));
      await executor.close();
      (await start()).client.close();
      return null;
    }
  }
}

export default async function handle(req: ShardRequest): Promise<Result<unknown>> {
  try {
    return { ok: true, value: await dispatch(req) };
  } catch (err) {
    return { ok: false, error: toWire(err) };
  }
}
