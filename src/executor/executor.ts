// moby's plugin executor (plugin/executor/containerd) on our containerd
// client: create, restore, status, signal, stop, remove and exit handling for
// the plugins of one namespace. It knows nothing of threads; the service runs
// one per shard worker, a test runs one in-process.
//
// Every operation and exit of one id runs through a per-id queue, in order;
// different ids run in parallel. The container record outlives the task:
// after an exit the plugin stays listed as stopped (exit status in its
// labels) until remove(), unless it was created with autoRemove. This class
// is the queued facade; the work is done in create.ts, docker-plugin.ts,
// image-plugin.ts, exit.ts, stop.ts, restore.ts, sweep.ts, cleanup.ts,
// update.ts, stats.ts and health.ts (with exec.ts), on a shared
// ExecutorContext.
import {
  ErrorCode,
  type Any,
  type ContainerdClient,
  type ContainerdEvent,
  type RuncOptions,
  type TaskMetrics,
  silentLogger,
  type Logger,
} from '../containerd/index.js';
import { pluginPaths } from '../common/paths.js';
import type { Resources } from '../common/resources.js';
import { loadBundle } from './bundle.js';
import { bundleSpec, untilReady, type BundleDirRun, type BundleRun, type ImageRun } from './docker-plugin.js';
import { removeEverything } from './cleanup.js';
import { logDir, runtimesOf, type ExecutorContext } from './context.js';
import { createPlugin, restartPlugin, type CreateHow } from './create.js';
import { withImageRootfs } from './image-plugin.js';
import { PluginError, forPlugin, notFound } from './errors.js';
import { handleExit } from './exit.js';
import { StdioSets, type StdioVia } from './stdio-sets.js';
import { pipeHolderBinary } from '../keeper/index.js';
import { validateId } from './ids.js';
import { KeyedQueue, Semaphore } from './keyed-queue.js';
import type { ErrnoClass, FdHooks } from './log-file.js';
import type { LogChunk } from './log-reader.js';
import { pluginLogs, type PluginLogsOptions } from './plugin-logs.js';
import { toStatus, type Plugin, type PluginExit, type PluginStatus } from './plugin.js';
import { restore, restoreAll } from './restore.js';
import { LABEL, normalizeSettings, type PluginSettings, type PluginSettingsInput } from './settings.js';
import { withResources, type OciSpec } from './spec.js';
import type { StreamName } from './stdio.js';
import { signalPlugin, stopPlugin } from './stop.js';
import { stdioOptions, type StdioHooks } from './stdio-options.js';
import { cancelLateChecks } from './sweep.js';
import { HealthChecks } from './health.js';
import { pluginStats } from './stats.js';
import { updatePlugin } from './update.js';
import { checkStopTimeout, isStopSignal, parseSignal, resolveRuntimeBinary, validateSpec } from './validate.js';

export type { BundleDirRun, BundleRun, ImageRun };

export interface ExecutorOptions {
  client: ContainerdClient;
  /** FIFOs in `<dataDir>/fifo`, plugin logs in `<dataDir>/logs/<id>`. */
  dataDir: string;
  /** Default io.containerd.runc.v2. */
  runtime?: string;
  /**
   * Options for the runc shim (runc root, binary, systemd cgroups). Default:
   * none. binaryName, an absolute path, is the runtime of plugins whose
   * settings do not name one (a plugin's runtimeBinary replaces it).
   */
  runcOptions?: RuncOptions;
  /**
   * Told once per exit, as soon as it is known; reaping (exit recorded on
   * the container, task deleted, output drained) follows, and everything
   * else done to the id queues behind it.
   */
  onExit?: (exit: PluginExit) => void;
  /**
   * A plugin's task is created (pid known) and about to be started; then,
   * if its start fails, onStartFailed before the task is deleted. Whoever
   * hears exits from containerd itself can then tell the exit of a task that
   * exits as it starts at once, not after the start's reply.
   */
  onStarting?: (id: string, pid: number) => void;
  onStartFailed?: (id: string, pid: number) => void;
  /** Which ids this executor owns (a shard); restoreAll() skips the rest. Default: all. */
  owns?: (id: string) => boolean;
  /** A name for this executor's FIFO pool when several share a data dir (shards). */
  name?: string;
  /**
   * How new plugins' stdout and stderr reach plugind (see stdio-sets.ts):
   * 'pipes' (default), the plugin writing into pipes plugind reads, held by
   * pipeHolder; or 'fifos', copied by the shim into FIFOs.
   */
  stdio?: StdioVia;
  /** The pipe holder program. Default build/plugind-pipe-holder. */
  pipeHolder?: string;
  onBytes?: (stream: StreamName, bytes: number) => void;
  onDropped?: (stream: StreamName, bytes: number) => void;
  /** Each failed attempt to write a plugin's log file (see WriteFailure). */
  onLogWriteError?: (errno: ErrnoClass) => void;
  /** Told when a plugin is killed for failing its health checks. */
  onUnhealthyKill?: (id: string) => void;
  /** Told of log file fds as they open and close (see FdHooks). */
  fdHooks?: FdHooks;
  logger?: Logger;
}

export interface CreateOptions {
  /** Replace a stopped plugin of the same id (`run --replace`); without it that is ALREADY_EXISTS. */
  replace?: boolean;
}

/** What logs() takes (see pluginLogs). */
export type LogsOptions = PluginLogsOptions;

const REAP_CONCURRENCY = 4;

const DEFAULT_RUNTIME = 'io.containerd.runc.v2';
// How long close() lets copy loops reach EOF before it closes them.
const CLOSE_GRACE_MS = 500;

export class Executor {
  readonly #ctx: ExecutorContext;
  readonly #log: Logger;
  readonly #defaultBinary: string;
  readonly #health: HealthChecks;

  constructor(options: ExecutorOptions) {
    const name = options.runtime ?? DEFAULT_RUNTIME;
    const runc = options.runcOptions;
    this.#defaultBinary = runc?.binaryName ?? '';
    const runtime = runtimesOf(name, runc);
    const hooks: StdioHooks = { onBytes: options.onBytes, onDropped: options.onDropped, onLogWriteError: options.onLogWriteError, fdHooks: options.fdHooks };
    this.#log = options.logger ?? silentLogger;
    this.#ctx = {
      client: options.client,
      runtime,
      sets: StdioSets.under(pluginPaths(options.dataDir), { poolName: `.pool${options.name ? `-${options.name}` : ''}`, via: options.stdio ?? 'pipes', holder: options.pipeHolder ?? pipeHolderBinary() }),
      logRoot: pluginPaths(options.dataDir).logs,
      runRoot: pluginPaths(options.dataDir).run,
      propagatedRoot: pluginPaths(options.dataDir).propagated,
      queue: new KeyedQueue(),
      reapSlots: new Semaphore(REAP_CONCURRENCY),
      plugins: new Map<string, Plugin>(),
      lateChecks: new Set<NodeJS.Timeout>(),
      onExit: options.onExit ?? (() => {}),
      onStarting: options.onStarting ?? (() => {}),
      onStartFailed: options.onStartFailed ?? (() => {}),
      owns: options.owns ?? (() => true),
      log: this.#log,
      stdioOptions: (id, settings) => stdioOptions(id, settings, hooks, this.#log),
    };
    this.#health = new HealthChecks(this.#ctx, { execDir: pluginPaths(options.dataDir).exec, ...(options.onUnhealthyKill ? { onKill: options.onUnhealthyKill } : {}) });
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

  /**
   * Runs a Docker plugin: the spec made from its config as moby's InitSpec
   * makes it (see bundle.ts), its runtime dir and propagated mount made
   * before the task starts. Resolves once its socket accepts a connection;
   * if it does not within the ready timeout, or the plugin exits first, the
   * plugin is stopped (it stays listed, with its logs) and this rejects
   * naming the socket and quoting the end of its stderr. Nothing is created
   * when the config asks for what cannot be given.
   */
  async createBundle(id: string, run: BundleRun, input: PluginSettingsInput = {}, options: CreateOptions = {}): Promise<{ pid: number }> {
    validateId(id);
    let made: ReturnType<typeof bundleSpec>;
    try {
      made = bundleSpec(this.#ctx, id, run);
    } catch (err) {
      throw forPlugin(id, err);
    }
    const how: CreateHow = { replace: options.replace ?? false, keepLogs: false };
    if (typeof run.rootfs !== 'string') how.rootfsMounts = run.rootfs;
    return this.#create(id, made.spec, { ...input, bundle: made.bundle }, how);
  }

  /** createBundle() from a bundle dir (config.json and rootfs/), read and checked first. */
  async createFromBundleDir(id: string, run: BundleDirRun, input: PluginSettingsInput = {}, options: CreateOptions = {}): Promise<{ pid: number }> {
    validateId(id);
    const { dir, ...rest } = run;
    let loaded;
    try {
      loaded = await loadBundle(dir);
    } catch (err) {
      throw forPlugin(id, err);
    }
    return this.createBundle(id, { ...rest, config: loaded.config, rootfs: loaded.rootfs }, input, options);
  }

  /**
   * createBundle() from a pulled image: its plugin config, and a snapshot of
   * its layers (key: the plugin id) as the rootfs. The snapshot goes with the
   * plugin (rm, --rm, a failed create); a re-run or a policy restart gets its
   * mounts again from the container record. Not pulled: NOT_FOUND naming
   * `plugind pull REF`.
   */
  async createFromImage(id: string, run: ImageRun, input: PluginSettingsInput = {}, options: CreateOptions = {}): Promise<{ pid: number }> {
    validateId(id);
    const { image, ...rest } = run;
    return withImageRootfs(this.#ctx, id, image, options.replace ?? false, (rootfs, config) =>
      this.createBundle(id, { ...rest, config, rootfs: rootfs.mounts }, { ...input, image: { ref: rootfs.image, snapshotter: rootfs.snapshotter } }, options),
    );
  }

  async #create(id: string, spec: OciSpec, input: PluginSettingsInput, how: CreateHow): Promise<{ pid: number }> {
    validateId(id);
    let settings: PluginSettings;
    let packed: Any;
    try {
      settings = normalizeSettings(input, this.#defaultBinary);
      if (settings.resources) spec = withResources(spec, settings.resources);
      packed = await validateSpec(spec, { rootfsMounts: how.rootfsMounts !== undefined || settings.image !== undefined });
      if (input.runtimeBinary) settings.runtimeBinary = await resolveRuntimeBinary(input.runtimeBinary);
    } catch (err) {
      throw forPlugin(id, err);
    }
    const { pid, plugin } = await this.#ctx.queue.run(id, () => createPlugin(this.#ctx, id, settings, packed, how));
    // Outside the queue: the exit it races is handled there.
    if (settings.bundle) await untilReady(this.#ctx, plugin, settings.bundle);
    this.#health.watch(plugin);
    return { pid };
  }

  /**
   * Runs a stopped plugin again on its own container record (see
   * restartPlugin): what a restart policy does. A Docker plugin is waited
   * for as at its run.
   */
  async restart(id: string, restartCount: number): Promise<{ pid: number }> {
    validateId(id);
    const { pid, plugin } = await this.#ctx.queue.run(id, () => restartPlugin(this.#ctx, id, restartCount));
    if (plugin.settings.bundle) await untilReady(this.#ctx, plugin, plugin.settings.bundle);
    this.#health.watch(plugin);
    return { pid };
  }

  /** Re-attaches to one plugin from containerd's records (see restoreAll). */
  async restore(id: string): Promise<PluginStatus | undefined> {
    const status = await restore(this.#ctx, id);
    this.#watchRunning();
    return status;
  }

  /**
   * Rebuilds state from containerd for every managed plugin this executor
   * owns: running tasks get their FIFOs re-opened (what they wrote while
   * nobody read is still in the pipe), stopped or vanished ones are cleaned
   * up and told through onExit, half-created ones are removed. Also the
   * reconcile after an event gap: exits missed meanwhile are found here.
   */
  async restoreAll(): Promise<{ running: number; stopped: number; exited: number }> {
    const counts = await restoreAll(this.#ctx);
    this.#watchRunning();
    return counts;
  }

  /** Health checks for the running plugins a restore found (those checked already go on). */
  #watchRunning(): void {
    for (const p of this.#ctx.plugins.values()) this.#health.watch(p);
  }

  /**
   * Feeds a containerd event in; exits of init processes are told and reaped, the
   * rest ignored. With `told`, the caller has told the exit already and
   * onExit is not called for it: the exit is only reaped.
   */
  handleEvent(ev: ContainerdEvent, options: { told?: boolean } = {}): void {
    if (ev.topic !== '/tasks/exit' || ev.event.id !== ev.event.containerId) return;
    const { containerId: id, pid, exitStatus, exitedAt } = ev.event;
    const seen = { pid, exitStatus, exitedAt: exitedAt ?? new Date(ev.timestampMs) };
    void handleExit(this.#ctx, id, seen, ev.timestampMs, options.told ?? false).catch((err: Error) =>
      this.#log.error({ plugin: id, err }, 'exit handling failed; the next reconcile retries it'),
    );
  }

  /** containerd reported an OOM kill in the plugin's task: its exit will say so. */
  markOomKilled(id: string): void {
    const p = this.#ctx.plugins.get(id);
    if (p && p.state !== 'stopped') p.oomKilled = true;
  }

  /**
   * Sends a signal; false when the process had already exited. With byUser,
   * SIGKILL, SIGTERM and SIGINT count as the user's stop (recorded with the
   * exit they cause: no restart policy acts on it); other signals are
   * messages to the plugin.
   */
  async signal(id: string, signal: number | string, options: { all?: boolean; byUser?: boolean } = {}): Promise<boolean> {
    const n = parseSignal(signal);
    const p = this.#get(id);
    if (options.byUser && isStopSignal(n) && p.state !== 'stopped') p.stoppedByUser = true;
    return signalPlugin(this.#ctx, p, n, options.all ?? false);
  }

  /**
   * SIGTERM, then SIGKILL after timeoutMs; resolves once the exit has been
   * told and reaped (see stopPlugin). With byUser the exit is recorded as
   * the user's stop (so is a stopped plugin's, whose restart was pending).
   */
  async stop(id: string, timeoutMs = 10_000, options: { byUser?: boolean } = {}): Promise<PluginExit> {
    checkStopTimeout(timeoutMs);
    const p = this.#get(id);
    if (options.byUser && !p.stoppedByUser) {
      p.stoppedByUser = true;
      if (p.state === 'stopped' && p.reaped && !p.settings.autoRemove) {
        await this.#ctx.client.containers.setLabels(id, { [LABEL.stoppedByUser]: '1' }).catch((err: Error) => this.#log.warn({ plugin: id, err }, 'user stop not recorded on the container'));
      }
    }
    return stopPlugin(this.#ctx, p, timeoutMs);
  }

  /**
   * Removes a stopped plugin (container, FIFOs, logs); a running one only
   * with force (killed first). Whether it is stopped is asked in the id's
   * queue: an exit fed in just before this call lands first.
   */
  async remove(id: string, options: { force?: boolean } = {}): Promise<void> {
    const p = this.#get(id);
    if (p.state !== 'stopped' && options.force) await this.stop(id, 0);
    await this.#ctx.queue.run(id, async () => {
      if (this.#ctx.plugins.get(id) !== p) return;
      if (p.state !== 'stopped') {
        throw new PluginError(ErrorCode.FailedPrecondition, `plugin ${id} is running; stop it first or remove with force`, { plugin: id });
      }
      this.#ctx.plugins.delete(id);
      this.#health.forget(id);
      // A reaped exit deleted the task: rm is the container's delete alone.
      await removeEverything(this.#ctx, id, p.io, p.io?.set, { snapshotter: p.settings.image?.snapshotter, taskGone: p.reaped });
    });
  }

  /** New limits for a plugin, running or stopped (see updatePlugin); its status after. */
  async update(id: string, resources: Resources): Promise<PluginStatus> {
    const p = this.#get(id);
    await this.#ctx.queue.run(id, () => updatePlugin(this.#ctx, this.#ctx.plugins.get(id) ?? p, resources));
    return this.status(id);
  }

  /** CPU, memory and pids of its plugins, or of these ids, in one Tasks.Metrics call (see pluginStats). */
  stats(ids?: string[]): Promise<TaskMetrics[]> {
    return pluginStats(this.#ctx, ids);
  }

  /** The plugin's output from its log files; with follow, until its output ends. Works after exit. */
  logs(id: string, options: LogsOptions = {}): AsyncIterable<LogChunk> {
    const p = this.#get(id);
    // After work queued on this id: an exit being reaped is still flushing output.
    return pluginLogs(logDir(this.#ctx, id), () => p.io?.file, this.settled(id), options);
  }

  /** Resolves once everything queued on the id so far (an exit being reaped, say) is done. */
  settled(id: string): Promise<void> {
    return this.#ctx.queue.run(id, async () => {});
  }

  #get(id: string): Plugin {
    validateId(id);
    const p = this.#ctx.plugins.get(id);
    if (!p) throw notFound(id);
    return p;
  }

  status(id: string): PluginStatus {
    return toStatus(this.#get(id), this.#ctx);
  }

  list(): PluginStatus[] {
    return [...this.#ctx.plugins.values()].map((p) => toStatus(p, this.#ctx));
  }

  /**
   * Closes every copy loop, all at once, after a moment (CLOSE_GRACE_MS)
   * in which a plugin exiting now still gets its output to the file; what
   * was read is flushed. Plugins keep running; what they write meanwhile
   * waits in the pipe for the next reader (held there, once a plugin exits,
   * by the FIFO keeper: see src/keeper/fifo-keeper/main.go).
   */
  async close(): Promise<void> {
    cancelLateChecks(this.#ctx);
    this.#health.close();
    await Promise.all([...this.#ctx.plugins.values()].map((p) => p.io?.close(CLOSE_GRACE_MS)));
  }
}
