// A shard worker: one thread that owns a containerd connection, the executor
// of the plugin ids that hash to its shard, their stdio copy loops and its
// metrics. The coordinator talks to it through piscina tasks (see
// src/coordinator/protocol.ts) and one-way notices; exits it finds itself
// are pushed back on parentPort.
import { isMainThread, parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { pino } from 'pino';
import { CodedError, ErrorCode, errorCode } from '../src/common/errors.js';
import { connect, type ContainerdClient } from '../src/containerd/index.js';
import type {
  LogsControl,
  LogsMessage,
  PluginRequest,
  Result,
  ShardNotice,
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
import { PluginUsage } from './plugin-usage.js';

if (isMainThread || !parentPort) throw new Error('workers/shard-worker.ts is the entry of a shard worker thread (see src/coordinator/shard.ts), not a program');

const config = workerData as WorkerConfig;
const log = pino({ level: config.logLevel, base: { shard: config.shard } });

interface State {
  client: ContainerdClient;
  executor: Executor;
  metrics: ShardMetrics;
  usage: PluginUsage;
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
      ...(config.runtimeBinary ? { runcOptions: { binaryName: config.runtimeBinary } } : {}),
      stdio: config.stdio,
      owns: (id) => shardOf(id, config.shards) === config.shard,
      name: `shard${config.shard}`,
      fdHooks: new FdLedger(config.fdLedger),
      onBytes: (stream, n) => metrics.bytes(stream, n),
      onDropped: (stream, n) => metrics.dropped(stream, n),
      onLogWriteError: (errno) => metrics.logWriteError(errno),
      onUnhealthyKill: () => metrics.unhealthyKills.inc(),
      logger: log,
      onExit: (exit) => parentPort?.postMessage({ kind: 'exit', exit } satisfies ShardPush),
      onStarting: (id, pid) => parentPort?.postMessage({ kind: 'starting', id, pid } satisfies ShardPush),
      onStartFailed: (id, pid) => parentPort?.postMessage({ kind: 'start-failed', id, pid } satisfies ShardPush),
    });
    return { client, executor, metrics, usage: new PluginUsage(() => executor.stats()) };
  })();
  return state;
}

/**
 * Exit events from the coordinator, on the port the first init brought.
 * Each waits for the restore, as every request does: one handled before its
 * plugin is restored would find no plugin, and the restore (listed before
 * the exit) would then take the task for running. A restore that failed
 * drops them: the thread's next restore finds those exits itself.
 *
 * Requests come on another port, so a request can arrive before an exit
 * the coordinator posted first (and may have told already: `rm` right
 * after the exit was seen). Every request drains the notices port first.
 */
let notices: { port: MessagePort; take: (n: ShardNotice) => void } | undefined;

function listen(port: MessagePort, done: Promise<unknown>, executor: Executor): void {
  const take = (n: ShardNotice): void =>
    void done.then(
      () => (n.kind === 'oom' ? executor.markOomKilled(n.id) : executor.handleEvent(n.event, { told: n.told })),
      () => {},
    );
  notices = { port, take };
  port.on('message', take);
}

function drainNotices(): void {
  if (!notices) return;
  for (let m = receiveMessageOnPort(notices.port); m; m = receiveMessageOnPort(notices.port)) notices.take(m.message as ShardNotice);
}

/** Restores this shard's plugins once; every other request waits for it. */
function init(notices?: MessagePort): Promise<ShardReplies['init']> {
  restored ??= start().then(async ({ executor }) => {
    const counts = await executor.restoreAll();
    log.info(counts, 'shard restored');
    return counts;
  });
  if (notices) {
    const done = restored;
    void start().then(({ executor }) => listen(notices, done, executor));
  }
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
    const opts: Parameters<Executor['logs']>[1] = { ...req.options, signal: ac.signal };
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

type Kind = PluginRequest['kind'];
type Handlers = { [K in Kind]: (req: Extract<PluginRequest, { kind: K }>, s: State) => ShardReplies[K] | Promise<ShardReplies[K]> };

/** One handler per request kind, each typed by its request and its reply. */
const handlers: Omit<Handlers, 'init'> = {
  create: async (req, { executor }) => ({ ...(await executor.create(req.id, req.spec, req.settings, { replace: req.replace })), startedAtMs: nowMs() }),
  // startedAtMs is when the socket answered: a Docker plugin is started when it is ready.
  'create-bundle': async (req, { executor }) => ({
    ...(await executor.createFromBundleDir(req.id, req.bundle, req.settings, { replace: req.replace })),
    startedAtMs: nowMs(),
  }),
  'create-image': async (req, { executor }) => ({
    ...(await executor.createFromImage(req.id, req.image, req.settings, { replace: req.replace })),
    startedAtMs: nowMs(),
  }),
  restart: async (req, { executor }) => ({ ...(await executor.restart(req.id, req.restartCount)), startedAtMs: nowMs() }),
  status: (req, { executor }) => executor.status(req.id),
  list: (_req, { executor }) => executor.list(),
  signal: async (req, { executor }) => ({ delivered: await executor.signal(req.id, req.signal, { byUser: true }) }),
  stop: (req, { executor }) => executor.stop(req.id, req.timeoutMs, { byUser: true }),
  update: (req, { executor }) => executor.update(req.id, req.resources),
  stats: (req, { executor }) => executor.stats(req.ids),
  remove: async (req, { executor }) => {
    await executor.remove(req.id, { force: req.force });
    return null;
  },
  logs: (req, { executor }) => streamLogs(executor, req),
  reconcile: (_req, { executor }) => executor.restoreAll(),
  metrics: async (_req, { metrics, usage }) => {
    // The per-plugin series, from one Tasks.Metrics call started now (see PluginUsage).
    await metrics.pluginUsage(usage, log);
    return metrics.registry.getMetricsAsJSON();
  },
  shutdown: async (req, { executor, client }) => {
    if (req.stopPlugins) await Promise.allSettled(executor.list().map((p) => (p.state === 'stopped' ? undefined : executor.stop(p.id))));
    await executor.close();
    client.close();
    return null;
  },
};

/** The test hook, fenced: only a worker started with testHooks honours it. */
function crash(): null {
  if (!config.testHooks) throw new CodedError(ErrorCode.FailedPrecondition, 'crash is a test hook and is disabled');
  // An uncaught exception, as a bug would raise: the thread dies.
  setImmediate(() => {
    throw new Error(`shard ${config.shard}: crash requested (test hook)`);
  });
  return null;
}

async function dispatch(req: ShardRequest): Promise<unknown> {
  if (req.kind === 'crash') return crash();
  if (req.kind === 'init') return init(req.notices);
  drainNotices();
  await init();
  const handler = handlers[req.kind] as (r: PluginRequest, s: State) => unknown;
  return handler(req, await start());
}

export default async function handle(req: ShardRequest): Promise<Result<unknown>> {
  try {
    return { ok: true, value: await dispatch(req) };
  } catch (err) {
    return { ok: false, error: toWire(err) };
  }
}
