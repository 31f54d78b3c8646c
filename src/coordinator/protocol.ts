// The messages between the coordinator and its shard workers, one file for
// both sides (workers import it with `import type`). Requests travel as
// piscina tasks; every reply is a Result, because an Error loses its `code`
// crossing a thread: it goes as {code, message, stack} and is rebuilt.
// Exit events go one way, as notices on a port handed over by `init`: the
// coordinator has told the exit already and wants no reply.
import type { MessagePort } from 'node:worker_threads';
import type { Resources } from '../common/resources.js';
import type { ContainerdEvent, TaskMetrics } from '../containerd/index.js';
import type { StdioVia } from '../executor/index.js';
import type { BundleDirRun, ErrorCode, ImageRun, LogChunk, LogsOptions, OciSpec, PluginExit, PluginSettingsInput, PluginStatus } from '../executor/index.js';

/** What a worker is started with (piscina workerData). */
export interface WorkerConfig {
  shard: number;
  shards: number;
  /** containerd address and namespace for the worker's own connection. */
  address: string;
  namespace: string;
  /** The executor's data dir (FIFOs, logs). */
  dataDir: string;
  logLevel: string;
  /** The runtime binary (absolute path) of plugins that do not name one; '': runc on the shim's PATH. */
  runtimeBinary: string;
  stdio: StdioVia;
  /** One bit per fd the worker's log files hold open; see FdLedger. */
  fdLedger: SharedArrayBuffer;
  /** Honour the 'crash' request (tests only). */
  testHooks: boolean;
}

/** Requests of the service itself. */
export type PluginRequest =
  /** The first init of a thread brings it its notice port; later ones wait for that restore. */
  | { kind: 'init'; notices?: MessagePort }
  | { kind: 'create'; id: string; spec: OciSpec; settings: PluginSettingsInput; replace: boolean }
  /** A Docker plugin from its bundle dir: read, run, and its socket waited for on the shard. */
  | { kind: 'create-bundle'; id: string; bundle: BundleDirRun; settings: PluginSettingsInput; replace: boolean }
  /** A Docker plugin from a pulled image: its snapshot prepared, run, and its socket waited for on the shard. */
  | { kind: 'create-image'; id: string; image: ImageRun; settings: PluginSettingsInput; replace: boolean }
  /** A stopped plugin run again by its restart policy, as its restartCount-th restart. */
  | { kind: 'restart'; id: string; restartCount: number }
  | { kind: 'status'; id: string }
  | { kind: 'list' }
  | { kind: 'signal'; id: string; signal: string | number }
  | { kind: 'stop'; id: string; timeoutMs: number }
  | { kind: 'update'; id: string; resources: Resources }
  /** ids: only these (each this shard's); none: every plugin of the shard. */
  | { kind: 'stats'; ids?: string[] }
  | { kind: 'remove'; id: string; force: boolean }
  | { kind: 'logs'; id: string; options: Omit<LogsOptions, 'signal'>; port: MessagePort }
  | { kind: 'reconcile' }
  | { kind: 'metrics' }
  | { kind: 'shutdown'; stopPlugins: boolean };

/** Test hooks, honoured only by a worker started with testHooks. */
export type TestHookRequest = { kind: 'crash' };

export type ShardRequest = PluginRequest | TestHookRequest;

/** Coordinator → worker, one way, on the port given with `init`. */
export type ShardNotice =
  | {
      kind: 'reap';
      event: ContainerdEvent;
      /** The coordinator told this exit as the event reached it: the worker only reaps it. */
      told: boolean;
    }
  /** containerd reported an OOM kill in the plugin's task: its exit is an OOM kill. */
  | { kind: 'oom'; id: string };

export interface RestoreCounts {
  running: number;
  stopped: number;
  exited: number;
}

/** The value each request kind resolves to. */
export interface ShardReplies {
  init: RestoreCounts;
  /** startedAtMs: when the task started (performance.timeOrigin + now()). */
  create: { pid: number; startedAtMs: number };
  'create-bundle': { pid: number; startedAtMs: number };
  'create-image': { pid: number; startedAtMs: number };
  restart: { pid: number; startedAtMs: number };
  status: PluginStatus;
  list: PluginStatus[];
  signal: { delivered: boolean };
  stop: PluginExit;
  update: PluginStatus;
  stats: TaskMetrics[];
  remove: null;
  logs: null;
  reconcile: RestoreCounts;
  /** prom-client's getMetricsAsJSON() of the worker's registry. */
  metrics: unknown[];
  shutdown: null;
  crash: null;
}

export interface WireError {
  code: ErrorCode;
  message: string;
  stack?: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: WireError };

/**
 * Pushed by a worker (parentPort.postMessage) without being asked: an exit
 * it found itself (a stop's Wait, a restore, an event the coordinator could
 * not tell), for the coordinator to tell once; a task about to start (its
 * exit, when the event comes, is told as it arrives), and one whose start
 * failed (posted before that task is deleted: its exit is not news).
 */
export type ShardPush = { kind: 'exit'; exit: PluginExit } | { kind: 'starting'; id: string; pid: number } | { kind: 'start-failed'; id: string; pid: number };

/** On a logs request's MessagePort, worker → coordinator. */
export type LogsMessage = { kind: 'chunk'; chunk: LogChunk } | { kind: 'end' } | { kind: 'error'; error: WireError };

/** On a logs request's MessagePort, coordinator → worker. */
export type LogsControl = { kind: 'credit'; bytes: number } | { kind: 'cancel' };

/** Bytes a worker may send on a logs port before the reader grants more. */
export const LOGS_WINDOW = 1 << 20;
