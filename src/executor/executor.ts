// moby's plugin executor (plugin/executor/containerd) on our containerd
// client: create, restore, status, signal, stop, remove and exit handling for
// the plugins of one namespace. It knows nothing of threads; the service runs
// one per shard worker, a test runs one in-process.
//
// Every operation and exit of one id runs through a per-id queue, in order;
// different ids run in parallel. The container record outlives the task:
// after an exit the plugin stays listed as stopped (exit status in its
// labels) until remove(), unless it was created with autoRemove.
import { constants as osConstants } from 'node:os';
import { readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ErrorCode,
  isAlreadyExists,
  isErrorCode,
  isNotFound,
  packRuncOptions,
  packSpec,
  unpackSpec,
  type Any,
  type Container,
  type ContainerdClient,
  type ContainerdEvent,
  type Process,
  type RuncOptions,
  silentLogger,
  type Logger,
} from '../containerd/index.js';
import { MAX_SPEC_BYTES, MAX_STOP_TIMEOUT_MS } from '../common/limits.js';
import { pluginPaths } from '../common/paths.js';
import { PluginError, forPlugin, invalidArgument, notFound } from './errors.js';
import { FifoPool, idOfSet, setName, type FifoSet } from './fifo.js';
import { validateId } from './ids.js';
import { KeyedQueue, Semaphore } from './keyed-queue.js';
import type { ErrnoClass, FdHooks } from './log-file.js';
import { merge, readLog, type LogChunk } from './log-reader.js';
import {
  MANAGED_FILTER,
  exitFromLabels,
  exitToLabels,
  type RecordedExit,
  normalizeSettings,
  settingsFromLabels,
  settingsToLabels,
  type PluginSettings,
  type PluginSettingsInput,
} from './settings.js';
import { MAX_SPEC_DEPTH, jsonDepth, type OciSpec } from './spec.js';
import { PluginIO, STREAMS, type StdioOptions, type StreamName } from './stdio.js';

export type PluginState = 'created' | 'running' | 'stopped' | 'paused' | 'unknown';

export interface PluginExit {
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: Date;
  /** containerd's event timestamp (ms), when an event reported the exit. */
  eventTimestampMs?: number;
}

export interface PluginStatus {
  id: string;
  state: PluginState;
  pid: number;
  createdAt: Date;
  exitStatus?: number;
  exitedAt?: Date;
  settings: PluginSettings;
}

export interface ExecutorOptions {
  client: ContainerdClient;
  /** FIFOs in `<dataDir>/fifo`, plugin logs in `<dataDir>/logs/<id>`. */
  dataDir: string;
  /** Default io.containerd.runc.v2. */
  runtime?: string;
  /** Options for the runc shim (runc root, binary, systemd cgroups). Default: none. */
  runcOptions?: RuncOptions;
  /**
   * Told once per exit, as soon as it is known; reaping (exit recorded on
   * the container, task deleted, output drained) follows, and everything
   * else done to the id queues behind it.
   */
  onExit?: (exit: PluginExit) => void;
  /** Which ids this executor owns (a shard); restoreAll() skips the rest. Default: all. */
  owns?: (id: string) => boolean;
  /** A name for this executor's FIFO pool when several share a data dir (shards). */
  name?: string;
  onBytes?: (stream: StreamName, bytes: number) => void;
  onDropped?: (stream: StreamName, bytes: number) => void;
  /** Each failed attempt to write a plugin's log file (see WriteFailure). */
  onLogWriteError?: (errno: ErrnoClass) => void;
  /** Told of log file fds as they open and close (see FdHooks). */
  fdHooks?: FdHooks;
  logger?: Logger;
}

export interface CreateOptions {
  /** Replace a stopped plugin of the same id (`run --replace`); without it that is ALREADY_EXISTS. */
  replace?: boolean;
}

export interface LogsOptions {
  stream?: StreamName;
  /** Only the last this many bytes of each stream. */
  tail?: number;
  follow?: boolean;
  signal?: AbortSignal;
}

interface Plugin {
  id: string;
  state: PluginState;
  pid: number;
  createdAt: Date;
  settings: PluginSettings;
  io: PluginIO | undefined;
  exit: PluginExit | undefined;
  /** Task deleted, output flushed, exit recorded on the container. */
  reaped: boolean;
  /** Resolves when the current task's exit has been handled and reaped. */
  exited: Promise<PluginExit>;
  resolveExited: (e: PluginExit) => void;
}

type RestoreOutcome = 'running' | 'stopped' | 'exited' | 'removed';

const REAP_CONCURRENCY = 4;

const DEFAULT_RUNTIME = 'io.containerd.runc.v2';
const SIGKILL = osConstants.signals.SIGKILL;
const SIGTERM = osConstants.signals.SIGTERM;
// When a task's exit status cannot be known (its task vanished), as containerd reports it.
const UNKNOWN_EXIT_STATUS = 255;
// When to look again for the task of a plugin found without one (a task
// create whose caller died can still finish in containerd).
const LATE_TASK_CHECKS_MS = [2_000, 15_000];
// How long close() lets copy loops reach EOF before it closes them.
const CLOSE_GRACE_MS = 500;

function newPlugin(id: string, fields: Pick<Plugin, 'state' | 'pid' | 'createdAt' | 'settings' | 'io'>): Plugin {
  let resolveExited!: (e: PluginExit) => void;
  const exited = new Promise<PluginExit>((r) => (resolveExited = r));
  return { id, ...fields, exit: undefined, reaped: false, exited, resolveExited };
}

/** Accepts a signal number or name (`TERM`, `SIGTERM`, `sigterm`). */
export function parseSignal(signal: number | string): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 1 && signal <= 64) return signal;
    throw invalidArgument(`signal ${signal}: want 1 to 64 or a name such as TERM`);
  }
  if (/^\d+$/.test(signal)) return parseSignal(Number(signal));
  const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  const n = (osConstants.signals as Record<string, number>)[name];
  if (n === undefined) throw invalidArgument(`unknown signal ${JSON.stringify(signal)}`);
  return n;
}

/**
 * Checks what containerd would reject late, or not at all, before anything
 * is created; returns the spec packed for containerd (serialized once).
 */
export async function validateSpec(spec: unknown): Promise<Any> {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw invalidArgument('spec is not a JSON object');
  const s = spec as Partial<OciSpec>;
  // Checked before anything serializes it: deep nesting overflows the stack there.
  if (jsonDepth(spec) > MAX_SPEC_DEPTH) throw invalidArgument(`spec nests deeper than ${MAX_SPEC_DEPTH} levels`);
  const packed = packSpec(spec);
  if (packed.value.length > MAX_SPEC_BYTES) throw invalidArgument(`spec is ${packed.value.length} bytes; at most ${MAX_SPEC_BYTES}`);
  const args = s.process?.args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
    throw invalidArgument('spec.process.args must be a non-empty list of strings');
  }
  if (args[0] === '') throw invalidArgument('spec.process.args[0] (the command) is empty');
  const env = s.process?.env;
  if (env !== undefined && (!Array.isArray(env) || !env.every((e) => typeof e === 'string' && e.includes('=') && !e.startsWith('=')))) {
    throw invalidArgument('spec.process.env must be a list of K=V strings');
  }
  if (s.process?.terminal) throw invalidArgument('spec.process.terminal is not supported: plugins have no terminal');
  if (typeof s.hostname === 'string' && Buffer.byteLength(s.hostname) > 64) throw invalidArgument(`spec.hostname is ${Buffer.byteLength(s.hostname)} bytes; Linux allows 64`);
  const root = s.root?.path;
  if (typeof root !== 'string' || !root.startsWith('/')) throw invalidArgument('spec.root.path must be an absolute path to the plugin rootfs');
  let st;
  try {
    st = await stat(root);
  } catch {
    throw invalidArgument(`rootfs ${root} does not exist`);
  }
  if (!st.isDirectory()) throw invalidArgument(`rootfs ${root} is not a directory`);
  return packed;
}

export class Executor {
  readonly #client: ContainerdClient;
  readonly #runtime: { name: string; options?: Any };
  readonly #fifos: FifoPool;
  readonly #logRoot: string;
  readonly #queue = new KeyedQueue();
  readonly #reapSlots = new Semaphore(REAP_CONCURRENCY);
  readonly #plugins = new Map<string, Plugin>();
  readonly #lateChecks = new Set<NodeJS.Timeout>();
  readonly #onExit: (exit: PluginExit) => void;
  readonly #owns: (id: string) => boolean;
  readonly #onBytes: ExecutorOptions['onBytes'];
  readonly #onDropped: ExecutorOptions['onDropped'];
  readonly #onLogWriteError: ExecutorOptions['onLogWriteError'];
  readonly #fdHooks: FdHooks | undefined;
  readonly #log: Logger;

  constructor(options: ExecutorOptions) {
    this.#client = options.client;
    this.#runtime = { name: options.runtime ?? DEFAULT_RUNTIME };
    if (options.runcOptions) this.#runtime.options = packRuncOptions(options.runcOptions);
    this.#fifos = new FifoPool({ root: pluginPaths(options.dataDir).fifo, poolName: `.pool${options.name ? `-${options.name}` : ''}` });
    this.#logRoot = pluginPaths(options.dataDir).logs;
    this.#onExit = options.onExit ?? (() => {});
    this.#owns = options.owns ?? (() => true);
    this.#onBytes = options.onBytes;
    this.#onDropped = options.onDropped;
    this.#onLogWriteError = options.onLogWriteError;
    this.#fdHooks = options.fdHooks;
    this.#log = options.logger ?? silentLogger;
  }

  #logDir(id: string): string {
    return join(this.#logRoot, id);
  }

  #stdioOptions(id: string, settings: PluginSettings): StdioOptions {
    const { mode } = settings.log;
    const o: StdioOptions = { rotation: settings.log, mode, bufferSize: settings.log.bufferSize };
    if (this.#onBytes) o.onBytes = this.#onBytes;
    if (this.#onDropped) o.onDropped = this.#onDropped;
    if (this.#fdHooks) o.fdHooks = this.#fdHooks;
    // Every attempt is counted; the log gets one line when an episode
    // starts and one when it ends, however many retries lie between.
    o.onWriteError = (stream, { error: err, errno, action, first, unwritten }) => {
      this.#onLogWriteError?.(errno);
      const fields = { plugin: id, stream, errno, err };
      if (action === 'give-up') {
        this.#log.error({ ...fields, dropped: unwritten }, "log file failed; the stream's output is read and dropped from now on (plugind_stdio_dropped_bytes_total)");
      } else if (first && action === 'recreate-dir') {
        this.#log.warn(fields, 'log dir was removed; making it again, output goes on in a new file');
      } else if (first) {
        const meanwhile = mode === 'blocking' ? 'the plugin blocks in write() until there is room' : 'output beyond the buffer is dropped until there is room';
        this.#log.warn(fields, `log writes failing; retrying with backoff, ${meanwhile}`);
      }
    };
    o.onWriteRecovered = (stream, { code, ms, attempts }) =>
      this.#log.info({ plugin: id, stream, errno: code, ms, attempts }, `log writes work again after ${ms} ms`);
    return o;
  }

  /**
   * Creates and starts a plugin; resolves with its pid once the task runs.
   * Three RPCs when the id is free (container create, task create, task
   * start); moby's path makes six. A stopped plugin of the id is replaced
   * only with options.replace; a running one is ALREADY_EXISTS. A stale
   * containerd record nobody knows of (its task not running) is replaced. Any failure after
   * the container exists removes task, container, FIFOs and logs.
   */
  create(id: string, spec: OciSpec, input: PluginSettingsInput = {}, options: CreateOptions = {}): Promise<{ pid: number }> {
    return this.#create(id, spec, input, { replace: options.replace ?? false, keepLogs: false });
  }

  async #create(id: string, spec: OciSpec, input: PluginSettingsInput, how: { replace: boolean; keepLogs: boolean }): Promise<{ pid: number }> {
    const { keepLogs } = how;
    validateId(id);
    let settings: PluginSettings;
    let packed: Any;
    try {
      settings = normalizeSettings(input);
      packed = await validateSpec(spec);
    } catch (err) {
      throw forPlugin(id, err);
    }
    return this.#queue.run(id, async () => {
      const known = this.#plugins.get(id);
      if (known && known.state !== 'stopped') {
        throw new PluginError(ErrorCode.AlreadyExists, `plugin ${id} is already running (pid ${known.pid})`);
      }
      // A stopped plugin is still the user's (listed, its logs kept): replacing it is asked for, not assumed.
      if (known && !how.replace) {
        throw new PluginError(ErrorCode.AlreadyExists, `plugin ${id} exists (stopped); remove it first (plugind rm ${id}) or run with --replace`);
      }
      const container = { id, labels: settingsToLabels(settings), runtime: this.#runtime, spec: packed };
      // A stopped record we know of is replaced without a failing create first.
      if (known) await this.#replaceStale(id, keepLogs);
      // FIFOs and log files are readied while containerd creates the
      // container: they do not depend on each other.
      const prepare = async (): Promise<{ fifos: FifoSet; io: PluginIO }> => {
        const fifos = await this.#fifos.take(setName(id));
        try {
          return { fifos, io: await PluginIO.open(fifos, this.#logDir(id), this.#stdioOptions(id, settings)) };
        } catch (err) {
          await this.#fifos.remove(fifos).catch(() => {});
          throw err;
        }
      };
      let prepared = prepare();
      prepared.catch(() => {});
      let created: Container;
      try {
        created = await this.#client.containers.create(container);
      } catch (err) {
        const stale = isAlreadyExists(err);
        // An old record's cleanup removes its log dir: give up what was prepared first.
        const p = await prepared.catch(() => undefined);
        p?.io.destroy();
        await Promise.all([p && this.#fifos.remove(p.fifos).catch(() => {}), stale ? undefined : rm(this.#logDir(id), { recursive: true, force: true })]);
        if (!stale) throw forPlugin(id, err);
        await this.#replaceStale(id, keepLogs);
        try {
          created = await this.#client.containers.create(container);
        } catch (retryErr) {
          throw forPlugin(id, retryErr);
        }
        prepared = prepare();
        prepared.catch(() => {});
      }
      let fifos: FifoSet | undefined;
      let io: PluginIO | undefined;
      try {
        ({ fifos, io } = await prepared);
        const pid = await this.#client.tasks.create({ containerId: id, stdout: fifos.stdout, stderr: fifos.stderr });
        const plugin = newPlugin(id, { state: 'created', pid, createdAt: created.createdAt ?? new Date(), settings, io });
        this.#plugins.set(id, plugin);
        await this.#client.tasks.start(id);
        plugin.state = 'running';
        return { pid };
      } catch (err) {
        this.#plugins.delete(id);
        if (!io) {
          const p = await prepared.catch(() => undefined);
          io = p?.io;
          fifos = p?.fifos;
        }
        await this.#removeEverything(id, io, fifos);
        throw forPlugin(id, err);
      }
    });
  }

  /** The id is taken in containerd: replace it unless its task runs. */
  async #replaceStale(id: string, keepLogs: boolean): Promise<void> {
    let task: Process | undefined;
    try {
      task = await this.#client.tasks.get(id);
    } catch (err) {
      if (!isNotFound(err)) throw forPlugin(id, err);
    }
    if (task && (task.status === 'running' || task.status === 'paused' || task.status === 'pausing')) {
      throw new PluginError(ErrorCode.AlreadyExists, `plugin ${id} is already running (pid ${task.pid})`);
    }
    const old = this.#plugins.get(id);
    this.#plugins.delete(id);
    this.#log.info({ plugin: id, task: task?.status ?? 'none' }, 'replacing stale plugin record');
    const oldFifos = task ? this.#fifos.setOf(task.stdout) : undefined;
    await this.#removeEverything(id, old?.io, oldFifos, keepLogs);
  }

  /** Force-deletes task and container and removes FIFOs and logs; missing pieces are fine. */
  async #removeEverything(id: string, io: PluginIO | undefined, fifos: FifoSet | undefined, keepLogs = false): Promise<void> {
    const steps: Array<Promise<unknown>> = [];
    await this.#forceDeleteTask(id).catch((err: Error) => this.#log.warn({ plugin: id, err }, 'cleanup: task not deleted'));
    io?.destroy();
    steps.push(this.#client.containers.delete(id).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err))));
    if (fifos) steps.push(this.#fifos.remove(fifos));
    if (!keepLogs) steps.push(rm(this.#logDir(id), { recursive: true, force: true }));
    const results = await Promise.allSettled(steps);
    for (const r of results) if (r.status === 'rejected') this.#log.warn({ plugin: id, err: r.reason as Error }, 'cleanup step failed');
  }

  /** Deletes the task whatever its state: a created or running task is killed first. */
  async #forceDeleteTask(id: string): Promise<void> {
    try {
      await this.#client.tasks.delete(id);
      return;
    } catch (err) {
      if (isNotFound(err)) return;
    }
    // A Created task can't be deleted until killed (nor can a running one).
    await this.#client.tasks.kill(id, SIGKILL, { all: true }).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
    await this.#client.tasks.wait(id, { timeoutMs: 10_000 }).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
    await this.#client.tasks.delete(id).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
  }

  /** Feeds a containerd event in; exits of init processes are handled, the rest ignored. */
  handleEvent(ev: ContainerdEvent): void {
    if (ev.topic !== '/tasks/exit' || ev.event.id !== ev.event.containerId) return;
    const { containerId: id, pid, exitStatus, exitedAt } = ev.event;
    void this.#exit(id, { pid, exitStatus, exitedAt: exitedAt ?? new Date(ev.timestampMs) }, ev.timestampMs).catch((err: Error) =>
      this.#log.error({ plugin: id, err }, 'exit handling failed; the next reconcile retries it'),
    );
  }

  /**
   * Handles one exit, once. The exit is recorded in memory and told to
   * onExit first; then it is reaped: task deleted, copy loops drained and
   * closed, FIFOs removed, exit recorded on the container (or container and
   * logs removed, with autoRemove). Reaping costs a shim round trip (~20 ms)
   * that listeners need not wait for; everything else done to this id (rm,
   * run, logs, stop's return) queues behind it. A repeated or stale exit
   * (another pid) is ignored.
   */
  #exit(id: string, e: { pid: number; exitStatus: number; exitedAt: Date }, eventTimestampMs?: number): Promise<void> {
    return this.#queue.run(id, async () => {
      const p = this.#plugins.get(id);
      if (!p || p.state === 'stopped' || (e.pid !== 0 && p.pid !== 0 && p.pid !== e.pid)) return;
      const exit: PluginExit = { id, pid: p.pid || e.pid, exitStatus: e.exitStatus, exitedAt: e.exitedAt };
      if (eventTimestampMs !== undefined) exit.eventTimestampMs = eventTimestampMs;
      const io = p.io;
      p.state = 'stopped';
      p.io = undefined;
      p.exit = exit;
      p.reaped = false;
      try {
        this.#onExit(exit);
      } catch (err) {
        this.#log.error({ plugin: id, err }, 'exit callback threw');
      }
      await this.#reap(p, io);
    });
  }

  /**
   * Called inside the id's queue. The exit is recorded on the container
   * first, so that a plugind that dies before the task is deleted finds it
   * recorded and does not report it again. A failure leaves `reaped` false;
   * restoreAll retries it.
   */
  async #reap(p: Plugin, io: PluginIO | undefined, fifos: FifoSet | undefined = io?.fifos): Promise<void> {
    const { id } = p;
    const exit = p.exit as PluginExit;
    try {
      if (!p.settings.autoRemove) {
        await this.#client.containers.setLabels(id, exitToLabels(exit)).catch((err) => {
          if (!isNotFound(err)) throw err;
        });
      }
      // Task deletes are the heavy part of an exit (the shim shuts down); a
      // few at a time keep a mass exit from starving kills and creates.
      await this.#reapSlots.acquire();
      try {
        await this.#client.tasks.delete(id);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      } finally {
        this.#reapSlots.release();
      }
    } finally {
      // After the delete the shim has closed its write ends: EOF follows.
      // Without it (containerd away), what arrives within close()'s wait is
      // kept and the set is removed: the copy loops are this call's to end,
      // a retry gets no io.
      if (io) {
        // Cleanly ended FIFOs go back to the pool: no mkfifo, no unlink.
        const clean = await io.close();
        await (clean ? this.#fifos.recycle(io.fifos) : this.#fifos.remove(io.fifos)).catch(() => {});
      } else if (fifos) {
        await this.#fifos.remove(fifos).catch(() => {});
      }
    }
    if (p.settings.autoRemove) {
      await this.#client.containers.delete(id).catch((err) => (isNotFound(err) ? undefined : Promise.reject(err)));
      await rm(this.#logDir(id), { recursive: true, force: true });
      if (this.#plugins.get(id) === p) this.#plugins.delete(id);
    }
    p.reaped = true;
    p.resolveExited(exit);
  }

  /** Resolves once everything queued on the id so far (an exit being reaped, say) is done. */
  settled(id: string): Promise<void> {
    return this.#queue.run(id, async () => {});
  }

  #get(id: string): Plugin {
    validateId(id);
    const p = this.#plugins.get(id);
    if (!p) throw notFound(id);
    return p;
  }

  status(id: string): PluginStatus {
    return toStatus(this.#get(id));
  }

  list(): PluginStatus[] {
    return [...this.#plugins.values()].map(toStatus);
  }

  /** Sends a signal; false when the process had already exited. */
  async signal(id: string, signal: number | string, options: { all?: boolean } = {}): Promise<boolean> {
    const n = parseSignal(signal);
    const p = this.#get(id);
    if (p.state === 'stopped') return false;
    try {
      await this.#client.tasks.kill(id, n, { all: options.all ?? false });
      return true;
    } catch (err) {
      // containerd's NOT_FOUND on kill: the process is gone already.
      if (isNotFound(err)) return false;
      throw forPlugin(id, err);
    }
  }

  /**
   * SIGTERM, then SIGKILL after timeoutMs (a PID 1 gets no default signal
   * handlers: a bare `sleep` ignores SIGTERM). Resolves once the exit has
   * been handled. It waits on the task itself too, so it does not depend
   * on the event stream.
   */
  async stop(id: string, timeoutMs = 10_000): Promise<PluginExit> {
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_STOP_TIMEOUT_MS) {
      throw invalidArgument(`stop timeout ${String(timeoutMs)} ms: want 0 to ${MAX_STOP_TIMEOUT_MS}`);
    }
    const p = this.#get(id);
    if (p.state === 'stopped' && p.exit) return p.exited;
    const abort = new AbortController();
    const waited = this.#client.tasks.wait(id, { signal: abort.signal }).then(
      (w) => this.#exit(id, { pid: p.pid, exitStatus: w.exitStatus, exitedAt: w.exitedAt ?? new Date() }),
      (err) => {
        if (isNotFound(err)) return this.#exit(id, { pid: p.pid, exitStatus: UNKNOWN_EXIT_STATUS, exitedAt: new Date() });
        return undefined;
      },
    );
    void waited.catch(() => {});
    try {
      const first = timeoutMs === 0 ? SIGKILL : SIGTERM;
      await this.#killUnlessGone(id, first);
      const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
      if ((await Promise.race([p.exited, timer])) === 'timeout') await this.#killUnlessGone(id, SIGKILL);
      return await p.exited;
    } catch (err) {
      throw forPlugin(id, err);
    } finally {
      abort.abort();
    }
  }

  /**
   * Signals the task (SIGKILL: every process in it). A kill racing the exit
   * can fail in ways other than NOT_FOUND (the shim closing its connection
   * as the task is deleted), so a failed kill counts only if the task still
   * runs. A kill that met its deadline is not asked about: a containerd that
   * did not answer it would keep the question waiting as long again.
   */
  async #killUnlessGone(id: string, signal: number): Promise<void> {
    try {
      await this.#client.tasks.kill(id, signal, { all: signal === SIGKILL });
    } catch (err) {
      if (isNotFound(err)) return;
      if (isErrorCode(err, ErrorCode.DeadlineExceeded)) throw err;
      const task = await this.#client.tasks.get(id).catch((e) => (isNotFound(e) ? undefined : Promise.reject(e)));
      if (task && task.status !== 'stopped') throw err;
    }
  }

  /** Removes a stopped plugin (container, FIFOs, logs); a running one only with force (killed first). */
  async remove(id: string, options: { force?: boolean } = {}): Promise<void> {
    const p = this.#get(id);
    if (p.state !== 'stopped') {
      if (!options.force) {
        throw new PluginError(ErrorCode.FailedPrecondition, `plugin ${id} is running; stop it first or remove with force`);
      }
      await this.stop(id, 0);
    }
    await this.#queue.run(id, async () => {
      if (this.#plugins.get(id) !== p) return;
      this.#plugins.delete(id);
      await this.#removeEverything(id, p.io, p.io?.fifos);
    });
  }

  /** The plugin's output from its log files; with follow, until its output ends. Works after exit. */
  logs(id: string, options: LogsOptions = {}): AsyncIterable<LogChunk> {
    const p = this.#get(id);
    if (options.tail !== undefined && (!Number.isInteger(options.tail) || options.tail < 0)) {
      throw invalidArgument(`tail ${String(options.tail)}: want a whole number of bytes`);
    }
    const streams = options.stream ? [options.stream] : STREAMS;
    const dir = this.#logDir(id);
    // Wait for work queued on this id: an exit being reaped is still flushing output.
    const settled = this.settled(id);
    const one = (stream: StreamName): AsyncIterable<LogChunk> =>
      (async function* () {
        await settled;
        for await (const data of readLog(dir, stream, { ...options, live: p.io?.files[stream] })) yield { stream, data };
      })();
    if (streams.length === 1 || !options.follow) {
      return (async function* () {
        for (const s of streams) yield* one(s);
      })();
    }
    return merge(streams.map(one));
  }

  /**
   * Runs a stopped plugin again from its own container record (spec and
   * settings as stored in containerd): what a restart policy does.
   */
  async recreate(id: string): Promise<{ pid: number }> {
    const p = this.#get(id);
    if (p.state !== 'stopped') throw new PluginError(ErrorCode.FailedPrecondition, `plugin ${id} is not stopped`);
    let container: Container;
    try {
      container = await this.#client.containers.get(id);
    } catch (err) {
      throw forPlugin(id, err);
    }
    if (!container.spec) throw new PluginError(ErrorCode.FailedPrecondition, `plugin ${id} has no spec to run again`);
    // Its logs carry on across runs, as a restarted container's do.
    return this.#create(id, unpackSpec(container.spec) as OciSpec, settingsFromLabels(container.labels), { replace: true, keepLogs: true });
  }

  /** Re-attaches to one plugin from containerd's records (see restoreAll). */
  async restore(id: string): Promise<PluginStatus | undefined> {
    validateId(id);
    let container: Container;
    try {
      container = await this.#client.containers.get(id);
    } catch (err) {
      if (isNotFound(err)) throw notFound(id);
      throw forPlugin(id, err);
    }
    const task = await this.#client.tasks.get(id).catch((err) => (isNotFound(err) ? undefined : Promise.reject(forPlugin(id, err))));
    await this.#restoreOne(container, task);
    const p = this.#plugins.get(id);
    return p ? toStatus(p) : undefined;
  }

  /**
   * Rebuilds state from containerd for every managed plugin this executor
   * owns: running tasks get their FIFOs re-opened (what they wrote while
   * nobody read is still in the pipe), stopped or vanished ones are cleaned
   * up and reported through onExit, half-created ones are removed. Also the
   * reconcile after an event gap: exits missed meanwhile are found here.
   */
  async restoreAll(): Promise<{ running: number; stopped: number; exited: number }> {
    const [containers, tasks] = await Promise.all([this.#client.containers.list([MANAGED_FILTER]), this.#client.tasks.list()]);
    const byId = new Map(tasks.map((t) => [t.containerId, t]));
    const mine = containers.filter((c) => this.#owns(c.id));
    const outcomes = await Promise.all(mine.map((c) => this.#restoreOne(c, byId.get(c.id))));
    await this.#removeStrayFifos(tasks);
    await this.#removeStrayLogs(new Set(containers.map((c) => c.id)));
    const count = (o: RestoreOutcome): number => outcomes.filter((x) => x === o).length;
    return { running: count('running'), stopped: count('stopped'), exited: count('exited') };
  }

  async #restoreOne(container: Container, listed: Process | undefined): Promise<RestoreOutcome> {
    const id = container.id;
    return this.#queue.run(id, async (): Promise<RestoreOutcome> => {
      const known = this.#plugins.get(id);
      // A plugin we already track may have changed since the list was taken
      // (a create or an exit ran ahead of us in its queue): ask again.
      const task = known
        ? await this.#client.tasks.get(id).catch((err) => (isNotFound(err) ? undefined : Promise.reject(forPlugin(id, err))))
        : listed;
      const settings = settingsFromLabels(container.labels);
      const createdAt = container.createdAt ?? new Date();
      if (!task) {
        if (known && known.state === 'stopped') {
          if (!known.reaped) await this.#reap(known, undefined);
          return 'stopped';
        }
        const recorded = exitFromLabels(container.labels);
        if (recorded && !known) {
          const p = this.#recordedPlugin(container, recorded);
          p.reaped = true;
          p.resolveExited(p.exit as PluginExit);
          return 'stopped';
        }
        // The task vanished without a recorded exit (containerd lost it, or
        // plugind died between creating container and task). A task create
        // still running in containerd for a caller that died can make the
        // task after this: look again later. The FIFO set such a create
        // took is nobody's: it goes now.
        if (!known) {
          this.#plugins.set(id, newPlugin(id, { state: 'running', pid: 0, createdAt, settings, io: undefined }));
          for (const set of await this.#fifos.setsOf(id)) await this.#fifos.remove(set).catch(() => {});
        }
        this.#exitLater(id, { pid: 0, exitStatus: UNKNOWN_EXIT_STATUS, exitedAt: new Date() });
        this.#lookAgainLater(id);
        return 'exited';
      }
      if (task.status === 'created' && known && known.state === 'stopped') {
        // A create cut short (its worker died mid-call) whose task containerd
        // made after this plugin was found without one and reported exited:
        // the task is never started. Drop it; the exit stays on record.
        this.#log.warn({ plugin: id }, 'deleting a task created after its plugin was reported exited');
        await this.#forceDeleteTask(id);
        const fifos = this.#fifos.setOf(task.stdout);
        if (fifos) await this.#fifos.remove(fifos).catch(() => {});
        if (!known.reaped) await this.#reap(known, undefined);
        return 'stopped';
      }
      if (task.status === 'created') {
        // plugind died between task create and start: finish the failed create.
        this.#log.warn({ plugin: id }, 'removing a plugin whose start never completed');
        this.#plugins.delete(id);
        await this.#removeEverything(id, known?.io, this.#fifos.setOf(task.stdout));
        return 'removed';
      }
      if (known && known.state === 'stopped' && known.exit?.pid === task.pid) {
        // Its exit was reported, but reaping it failed: finish that, report nothing.
        if (!known.reaped) await this.#reap(known, undefined, this.#fifos.setOf(task.stdout));
        return 'stopped';
      }
      const recordedExit = exitFromLabels(container.labels);
      if (task.status === 'stopped' && recordedExit && recordedExit.pid === task.pid && (!known || known.pid === task.pid)) {
        // Told and recorded before plugind (or its worker) died; only the
        // reaping is left, and the output still in the pipe.
        known?.io?.destroy();
        const p = this.#recordedPlugin(container, recordedExit);
        await this.#reap(p, await this.#reopen(id, task, settings), this.#fifos.setOf(task.stdout));
        return 'stopped';
      }
      let p = known;
      if (!p || p.state === 'stopped' || p.pid !== task.pid) {
        known?.io?.destroy();
        p = newPlugin(id, { state: 'running', pid: task.pid, createdAt, settings, io: undefined });
        this.#plugins.set(id, p);
      }
      p.io ??= await this.#reopen(id, task, settings);
      // A stopped task is still 'running' to us until its exit is handled.
      p.state = task.status === 'paused' || task.status === 'pausing' ? 'paused' : 'running';
      if (task.status === 'stopped') {
        this.#exitLater(id, { pid: task.pid, exitStatus: task.exitStatus, exitedAt: task.exitedAt ?? new Date() });
        return 'exited';
      }
      return 'running';
    });
  }

  /** Opens a task's FIFOs again to copy its output; undefined when they are not ours or cannot be opened. */
  async #reopen(id: string, task: Process, settings: PluginSettings): Promise<PluginIO | undefined> {
    const fifos = this.#fifos.setOf(task.stdout);
    if (!fifos) return undefined;
    return PluginIO.open(fifos, this.#logDir(id), this.#stdioOptions(id, settings)).catch((err: Error) => {
      this.#log.warn({ plugin: id, err }, 'restore: FIFOs could not be re-opened; output is not copied');
      return undefined;
    });
  }

  /** A stopped plugin rebuilt from its container and the exit recorded on it; it replaces any record of the id. */
  #recordedPlugin(container: Container, recorded: RecordedExit): Plugin {
    const { id } = container;
    const p = newPlugin(id, { state: 'stopped', pid: recorded.pid, createdAt: container.createdAt ?? new Date(), settings: settingsFromLabels(container.labels), io: undefined });
    p.exit = { id, ...recorded };
    this.#plugins.set(id, p);
    return p;
  }

  // Called from inside the id's queue: the exit is queued behind the current work.
  #exitLater(id: string, e: { pid: number; exitStatus: number; exitedAt: Date }): void {
    void this.#exit(id, e).catch((err: Error) => this.#log.error({ plugin: id, err }, 'exit handling failed'));
  }

  /**
   * Restores id again after LATE_TASK_CHECKS_MS each, while it is the
   * stopped plugin found without a task: a task created late is deleted.
   */
  #lookAgainLater(id: string): void {
    for (const ms of LATE_TASK_CHECKS_MS) {
      const timer = setTimeout(() => {
        this.#lateChecks.delete(timer);
        if (this.#plugins.get(id)?.state !== 'stopped') return;
        void this.restore(id).catch((err: Error) => {
          if (!(err instanceof PluginError && err.code === ErrorCode.NotFound)) this.#log.warn({ plugin: id, err }, 'late task check failed');
        });
      }, ms);
      timer.unref();
      this.#lateChecks.add(timer);
    }
  }

  /** FIFO sets that no task uses: left by a plugind that died mid-create. */
  async #removeStrayFifos(tasks: Process[]): Promise<void> {
    const inUse = new Set(tasks.map((t) => this.#fifos.setOf(t.stdout)?.dir).filter(Boolean));
    for (const p of this.#plugins.values()) if (p.io) inUse.add(p.io.fifos.dir);
    for (const name of await this.#fifos.list()) {
      const id = idOfSet(name);
      // A create of this id may hold a set it has not handed to containerd yet.
      if (!this.#owns(id) || this.#queue.has(id)) continue;
      const set = this.#fifos.setOf(join(this.#fifos.root, name, 'stdout'));
      if (set && !inUse.has(set.dir)) await this.#fifos.remove(set).catch(() => {});
    }
  }

  /** Log dirs of ids with no container: left by a create cut short before its container existed. */
  async #removeStrayLogs(containers: Set<string>): Promise<void> {
    const names = await readdir(this.#logRoot).catch(() => [] as string[]);
    for (const id of names) {
      if (containers.has(id) || this.#plugins.has(id) || this.#queue.has(id) || !this.#owns(id)) continue;
      await rm(this.#logDir(id), { recursive: true, force: true });
    }
  }

  /**
   * Closes every copy loop, all at once, after a moment (CLOSE_GRACE_MS)
   * in which a plugin exiting now still gets its output to the file; what
   * was read is flushed. Plugins keep running; what they write meanwhile
   * waits in the pipe for the next reader (held there, once a plugin exits,
   * by the FIFO keeper: see fifo-keeper.ts).
   */
  async close(): Promise<void> {
    for (const t of this.#lateChecks) clearTimeout(t);
    this.#lateChecks.clear();
    await Promise.all([...this.#plugins.values()].map((p) => p.io?.close(CLOSE_GRACE_MS)));
  }
}

function toStatus(p: Plugin): PluginStatus {
  const s: PluginStatus = { id: p.id, state: p.state, pid: p.pid, createdAt: p.createdAt, settings: p.settings };
  if (p.exit) {
    s.exitStatus = p.exit.exitStatus;
    s.exitedAt = p.exit.exitedAt;
  }
  return s;
}
