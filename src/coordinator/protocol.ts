// The messages between the coordinator and its shard workers, one file for
// both sides (workers import it with `import type`). Requests travel as
// piscina tasks; every reply is a Result, because an Error loses its `code`
// crossing a thread: it goes as {code, message, stack} and is rebuilt.
import type { MessagePort } from 'node:worker_threads';
import type { ContainerdEvent } from '../containerd/index.js';
import type { ErrorCode, LogChunk, OciSpec, PluginExit, PluginSettingsInput, PluginStatus, StreamName } from '../executor/index.js';

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
  /** One bit per fd the worker's log files hold open; see FdLedger. */
  fdLedger: SharedArrayBuffer;
  /** Honour the 'crash' request (tests only). */
  testHooks: boolean;
}

export type ShardRequest =
  | { kind: 'init' }
  | { kind: 'create'; id: string; spec: OciSpec; settings: PluginSettingsInput; replace: boolean }
  | { kind: 'recreate'; id: string }
  | { kind: 'status'; id: string }
  | { kind: 'list' }
  | { kind: 'signal'; id: string; signal: string | number }
  | { kind: 'stop'; id: string; timeoutMs: number }
  | { kind: 'remove'; id: string; force: boolean }
  | { kind: 'logs'; id: string; stream?: StreamName; tail?: number; follow: boolean; port: MessagePort }
  | { kind: 'event'; event: ContainerdEvent }
  | { kind: 'reconcile' }
  | { kind: 'metrics' }
  | { kind: 'shutdown'; stopPlugins: boolean }
  | { kind: 'crash' };

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
  recreate: { pid: number };
  status: PluginStatus;
  list: PluginStatus[];
  signal: { delivered: boolean };
  stop: PluginExit;
  remove: null;
  logs: null;
  event: null;
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

/** Pushed by a worker (parentPort.postMessage) without being asked. */
export type ShardPush = {
  kind: 'exit';
  shard: number;
  exit: PluginExit;
  /** The plugin's restart policy, for the coordinator to act on. */
  restart: string;
};

/** On a logs request's MessagePort, worker → coordinator. */
export type LogsMessage = { kind: 'chunk'; chunk: LogChunk } | { kind: 'end' } | { kind: 'error'; error: WireError };

/** On a logs request's MessagePort, coordinator → worker. */
export type LogsControl = { kind: 'credit'; bytes: number } | { kind: 'cancel' };

/** Bytes a worker may send on a logs port before the reader grants more. */
export const LOGS_WINDOW = 1 << 20;
