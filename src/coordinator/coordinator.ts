// The coordinator: shards plugin ids over worker threads (rendezvous
// hashing), holds the one containerd event subscription and routes exits to
// the owning shard, tells exits to listeners (once each), applies restart
// policies, and merges metrics. It never touches a plugin itself.
import { EventEmitter } from 'node:events';
import { mkdirSync, rmSync } from 'node:fs';
import { CodedError, ErrorCode, EventLoop, connect, isErrorCode, silentLogger, exitEventFilters, type ContainerdClient, type Logger, type TaskMetrics } from '../containerd/index.js';
import { pluginPaths, pluginsDir } from '../common/paths.js';
import type { Resources } from '../common/resources.js';
import type { StdioVia } from '../executor/index.js';
import {
  execInPlugin,
  isStopSignal,
  parseSignal,
  validateId,
  type BundleDirRun,
  type ExecRequest,
  type ExecSink,
  type ImageRun,
  type LogChunk,
  type OciSpec,
  type PluginExit,
  type PluginSettingsInput,
  type PluginStatus,
} from '../executor/index.js';
import { ExitLag } from './exit-lag.js';
import { shardLogs, type LogsOptions } from './shard-logs.js';
import { shardStats } from './shard-stats.js';
import { ServiceMetrics } from './metrics.js';
import { shardOf } from './shard-map.js';
import type { RestoreCounts, ShardPush } from './protocol.js';
import { ExitTeller } from './exit-teller.js';
import { ToldExits } from './told-exits.js';
import { RecentExits } from './recent-exits.js';
import { RestartRunner } from './restart-runner.js';
import { Restarts, type RestartBackoff } from './restarts.js';
import { Shard } from './shard.js';

export interface CoordinatorOptions {
  /** containerd's address (unix:///…). */
  containerdAddress: string;
  namespace: string;
  /** plugind's data dir; plugin FIFOs and logs go under `plugins/<namespace>`. */
  dataDir: string;
  /** Shard worker threads. Default 2. */
  workers?: number;
  logLevel?: string;
  /** What the runc shim runs for plugins that do not name a runtime binary: an absolute path. Default: runc on the shim's PATH. */
  runtimeBinary?: string;
  /** How new plugins' output reaches the shards. Default pipes. */
  stdio?: StdioVia;
  logger?: Logger;
  /** Enables crashWorker() (tests). */
  testHooks?: boolean;
  /** Restart-policy backoff, doubling from initialMs to maxMs. Default 100 ms / 1 min, reset after a 10 s run. */
  restartBackoff?: RestartBackoff;
}

export interface PluginInfo extends PluginStatus {
  shard: number;
  /** When its restart policy runs it next, while a restart is pending. */
  nextRestartAt?: Date;
}

export interface CoordinatorEvents {
  /** A plugin exit, told exactly once. */
  exit: [exit: PluginExit];
}


const nowMs = (): number => performance.timeOrigin + performance.now();

export class Coordinator extends EventEmitter<CoordinatorEvents> {
  readonly metrics = new ServiceMetrics(() => this.containerdHealthy());
  readonly shards: Shard[];
  /** The exits told lately (events --since). */
  readonly recentExits = new RecentExits();
  readonly #log: Logger;
  readonly #client: ContainerdClient;
  readonly #loop: EventLoop;
  readonly #restarts: Restarts;
  readonly #policy: RestartRunner;
  /**
   * Docker plugins whose run has not answered yet: the run waits for the
   * socket, an exit meanwhile fails the run, and is no failure for the
   * restart policy to act on.
   */
  readonly #runsPending = new Map<string, number>();
  readonly #exits: ExitTeller;
  readonly #execDir: string;
  #ready = false;
  #closing = false;

  constructor(options: CoordinatorOptions) {
    super();
    this.setMaxListeners(0);
    const workers = options.workers ?? 2;
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) throw new RangeError(`workers ${workers}: want 1 to 256`);
    this.#log = options.logger ?? silentLogger;
    this.#restarts = new Restarts(options.restartBackoff);
    this.#policy = new RestartRunner({
      restarts: this.#restarts,
      log: this.#log,
      closing: () => this.#closing,
      runPending: (id) => this.#runsPending.has(id),
      restart: (id, restartCount) => this.#shard(id).request({ kind: 'restart', id, restartCount }),
      beforeRestart: (id) => {
        this.#exits.newRun(id);
        this.metrics.pluginRestarts.inc({ plugin: id });
      },
      started: (id, pid) => this.#exits.started(id, pid),
    });
    this.#client = connect({ address: options.containerdAddress, namespace: options.namespace });
    const dataDir = pluginsDir(options.dataDir, options.namespace);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const paths = pluginPaths(dataDir);
    // FIFOs of exec'd processes a plugind that went away left behind.
    this.#execDir = paths.exec;
    rmSync(paths.exec, { recursive: true, force: true });
    const onWriteError = (err: NodeJS.ErrnoException, first: boolean): void => {
      this.metrics.stateWriteErrors.inc();
      if (first) this.#log.warn({ err }, 'cannot write told-exits (full disk?); exits told meanwhile are kept in memory only');
    };
    this.#exits = new ExitTeller(new ToldExits(paths.toldExits, onWriteError, paths.formerToldExits), new ExitLag(this.metrics.eventLag), (exit) => {
      this.metrics.exits.inc();
      this.recentExits.add(exit);
      this.emit('exit', exit);
      this.#policy.onExit(exit);
    });
    const config = {
      shards: workers,
      address: options.containerdAddress,
      namespace: options.namespace,
      dataDir,
      logLevel: options.logLevel ?? 'info',
      runtimeBinary: options.runtimeBinary ?? '',
      stdio: options.stdio ?? 'pipes',
      testHooks: options.testHooks ?? false,
    };
    this.shards = Array.from(
      { length: workers },
      (_, index) =>
        new Shard({
          index,
          config,
          logger: this.#log,
          onPush: (push) => this.#onPush(push),
          onReplaced: ({ shard, reason }) => {
            this.metrics.workerRestarts.inc();
            this.#log.warn({ shard, reason }, 'shard worker replaced');
            void this.#learn(this.shards[shard] as Shard);
          },
        }),
    );
    this.#loop = new EventLoop({
      client: this.#client,
      // Only exits are acted on; the other task events would be decoded for nothing.
      filters: exitEventFilters(options.namespace),
      logger: this.#log,
      onEvent: (ev) => {
        if (ev.topic === '/tasks/oom') return this.#onOom(ev.event.containerId);
        if (ev.topic !== '/tasks/exit') return;
        const { containerId: id, id: execId, pid, exitStatus, exitedAt } = ev.event;
        if (execId !== id) return;
        // Told here when it is the task we know runs; else the shard, which
        // knows every plugin's task, decides (and tells it if it is one).
        const told = this.#exits.event({ id, pid, exitStatus, exitedAt: exitedAt ?? new Date(ev.timestampMs), eventTimestampMs: ev.timestampMs });
        this.#shard(id).notify({ kind: 'reap', event: ev, told });
      },
      onLive: async ({ resubscribed }) => {
        if (!resubscribed) return;
        // Whatever exited while the stream was down is found by listing.
        this.metrics.containerdReconnects.inc();
        const counts = await Promise.all(this.shards.map((s) => s.request({ kind: 'reconcile' })));
        await Promise.all(this.shards.map((s) => this.#learn(s)));
        this.#log.info({ exitedWhileAway: counts.reduce((n, c) => n + c.exited, 0) }, 'event stream back; reconciled');
      },
    });
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Whether containerd answers its health check (within a second). */
  async containerdHealthy(): Promise<boolean> {
    return this.#client.health({ timeoutMs: 1000 }).then(
      (s) => s === 'SERVING',
      () => false,
    );
  }

  /**
   * Subscribes to containerd's events (confirmed live), then has every shard
   * restore its plugins; resolves when all are restored. Exits that happen
   * during the restore are not lost: the subscription came first.
   */
  async start(): Promise<RestoreCounts> {
    await this.#loop.start();
    const counts = await Promise.all(this.shards.map((s) => s.init()));
    const found = (await Promise.all(this.shards.map((s) => this.#learn(s)))).flat();
    // As docker's daemon does at its start: plugins found stopped are run
    // by an `always` or `unless-stopped` policy (and an `on-failure` one
    // whose exit failed) as if they had just exited.
    for (const p of found) {
      if (p.state === 'stopped') this.#policy.onExit({ id: p.id, exitStatus: p.exitStatus ?? 0, exitedAt: p.exitedAt ?? new Date() }, true);
    }
    this.#ready = true;
    return counts.reduce((a, c) => ({ running: a.running + c.running, stopped: a.stopped + c.stopped, exited: a.exited + c.exited }), {
      running: 0,
      stopped: 0,
      exited: 0,
    });
  }

  shardOf(id: string): number {
    return shardOf(id, this.shards.length);
  }

  #shard(id: string): Shard {
    return this.shards[this.shardOf(id)] as Shard;
  }

  /** What a shard's restore found: the tasks that run, and every plugin's restart policy; returns the plugins. */
  async #learn(shard: Shard): Promise<PluginStatus[]> {
    const plugins = await shard.request({ kind: 'list' }).catch((err: Error) => {
      this.#log.warn({ shard: shard.index, err }, 'shard plugins not listed; their exits are told by the shard');
      return [];
    });
    for (const p of plugins) {
      this.#restarts.learned(p.id, p.settings.restart, p);
      if (p.state === 'running' || p.state === 'paused') this.#exits.started(p.id, p.pid);
    }
    return plugins;
  }

  /** What a shard says unasked: an exit it found itself (a stop's Wait, a restore, an event not told here), a task about to start, a failed start. */
  #onPush(push: ShardPush): void {
    if (push.kind === 'exit') this.#exits.tell(push.exit);
    else if (push.kind === 'starting') this.#exits.started(push.id, push.pid);
    else this.#exits.startFailed(push.id, push.pid);
  }

  /** An OOM kill in a plugin's container: counted, said, and its exit (told next) marked. */
  #onOom(id: string): void {
    this.metrics.oomKills.inc();
    this.#exits.oomKilled(id);
    this.#log.warn({ plugin: id }, 'plugin reached its memory limit: the kernel killed a process in it (plugind_oom_kills_total)');
    this.#shard(id).notify({ kind: 'oom', id });
  }

  #info(status: PluginStatus): PluginInfo {
    const info: PluginInfo = { ...status, shard: this.shardOf(status.id), restartCount: this.#restarts.count(status.id) ?? status.restartCount };
    const next = this.#restarts.nextAtMs(status.id);
    if (next !== undefined) info.nextRestartAt = new Date(next);
    return info;
  }

  async run(id: string, spec: OciSpec, settings: PluginSettingsInput = {}, options: { replace?: boolean } = {}): Promise<{ pid: number; shard: number }> {
    return this.#run(id, settings, false, (shard) => shard.request({ kind: 'create', id, spec, settings, replace: options.replace ?? false }));
  }

  /** Runs a Docker plugin from its bundle dir; resolves once its socket answers (see Executor.createBundle). */
  async runBundle(id: string, bundle: BundleDirRun, settings: PluginSettingsInput = {}, options: { replace?: boolean } = {}): Promise<{ pid: number; shard: number }> {
    return this.#run(id, settings, true, (shard) => shard.request({ kind: 'create-bundle', id, bundle, settings, replace: options.replace ?? false }));
  }

  /** Runs a Docker plugin from a pulled image; resolves once its socket answers (see Executor.createFromImage). */
  async runImage(id: string, image: ImageRun, settings: PluginSettingsInput = {}, options: { replace?: boolean } = {}): Promise<{ pid: number; shard: number }> {
    return this.#run(id, settings, true, (shard) => shard.request({ kind: 'create-image', id, image, settings, replace: options.replace ?? false }));
  }

  async #run(
    id: string,
    settings: PluginSettingsInput,
    waitsReady: boolean,
    create: (shard: Shard) => Promise<{ pid: number; startedAtMs: number }>,
  ): Promise<{ pid: number; shard: number }> {
    const receivedAtMs = nowMs();
    validateId(id);
    this.#restarts.ran(id, settings.restart ?? 'no');
    this.#exits.newRun(id);
    const shard = this.#shard(id);
    if (waitsReady) this.#runsPending.set(id, (this.#runsPending.get(id) ?? 0) + 1);
    let reply: { pid: number; startedAtMs: number };
    try {
      reply = await create(shard);
    } catch (err) {
      // A plugin that never got ready (stopped by its run, or dead first) stays stopped: its exit may be told after this.
      if (waitsReady && (isErrorCode(err, ErrorCode.DeadlineExceeded) || isErrorCode(err, ErrorCode.FailedPrecondition))) this.#restarts.stoppedByUser(id);
      throw err;
    } finally {
      if (waitsReady) {
        const n = (this.#runsPending.get(id) ?? 1) - 1;
        if (n > 0) this.#runsPending.set(id, n);
        else this.#runsPending.delete(id);
      }
    }
    this.#exits.started(id, reply.pid);
    this.metrics.createDuration.observe(Math.max(0, reply.startedAtMs - receivedAtMs) / 1000);
    return { pid: reply.pid, shard: shard.index };
  }

  async inspect(id: string): Promise<PluginInfo> {
    validateId(id);
    return this.#info(await this.#shard(id).request({ kind: 'status', id }));
  }

  async list(): Promise<PluginInfo[]> {
    const lists = await Promise.all(this.shards.map((s) => s.request({ kind: 'list' })));
    return lists.flat().map((p) => this.#info(p)).sort((a, b) => a.id.localeCompare(b.id));
  }

  /** A stop signal (KILL, TERM, INT) is the user's stop: a pending restart is cancelled, and the exit it causes is not restarted. */
  async signal(id: string, signal: string | number): Promise<boolean> {
    validateId(id);
    if (isStopSignal(parseSignal(signal))) this.#restarts.stoppedByUser(id);
    return (await this.#shard(id).request({ kind: 'signal', id, signal })).delivered;
  }

  async stop(id: string, timeoutMs = 10_000): Promise<PluginExit> {
    validateId(id);
    this.#restarts.stoppedByUser(id);
    return this.#shard(id).request({ kind: 'stop', id, timeoutMs });
  }

  /** New limits (see Executor.update). */
  async update(id: string, resources: Resources): Promise<PluginInfo> {
    validateId(id);
    return this.#info(await this.#shard(id).request({ kind: 'update', id, resources }));
  }

  /** CPU, memory and pids (see shardStats): one Tasks.Metrics call per shard that has any. */
  stats(ids?: string[]): Promise<TaskMetrics[]> {
    return shardStats(this.shards, (id) => this.shardOf(id), ids);
  }

  /** Runs a process in a running plugin's container (see execInPlugin); resolves to its exit status. */
  async exec(req: ExecRequest, sink: ExecSink): Promise<number> {
    const p = await this.inspect(req.id);
    if (p.state !== 'running') throw new CodedError(ErrorCode.FailedPrecondition, `plugin ${req.id}: it is ${p.state}: exec needs a running plugin`);
    return execInPlugin(this.#client, this.#execDir, req, sink, this.#log);
  }

  async remove(id: string, force = false): Promise<void> {
    validateId(id);
    if (force) this.#restarts.stoppedByUser(id);
    await this.#shard(id).request({ kind: 'remove', id, force });
    this.#restarts.forget(id);
    this.#exits.forget(id);
    this.metrics.pluginRestarts.remove({ plugin: id });
  }

  /** The plugin's output from its shard (see shardLogs); breaking out of the loop cancels the stream. */
  async *logs(id: string, options: LogsOptions = {}): AsyncGenerator<LogChunk> {
    validateId(id);
    yield* shardLogs(this.#shard(id), id, options);
  }

  /** Test hook: makes a shard's worker thread die as a bug would. */
  async crashWorker(shard: number): Promise<void> {
    const s = this.shards[shard];
    if (!s) throw new CodedError(ErrorCode.InvalidArgument, `no shard ${shard}`);
    await s.request({ kind: 'crash' });
  }

  async renderMetrics(): Promise<{ contentType: string; body: string }> {
    const workers = await Promise.all(
      this.shards.map((s) => s.request({ kind: 'metrics' }).catch(() => [] as unknown[])),
    );
    return this.metrics.render(workers as unknown[][]);
  }

  /** Stops the event loop and the workers; plugins keep running unless stopPlugins. Idempotent. */
  async close(options: { stopPlugins?: boolean } = {}): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    if (options.stopPlugins) {
      // Exits must still be told and reaped while plugins stop: the loop closes after.
      await Promise.all(this.shards.map((s) => s.close(true)));
      await this.#loop.close();
    } else {
      await this.#loop.close();
      await Promise.all(this.shards.map((s) => s.close(false)));
    }
    this.#restarts.close();
    this.#client.close();
    this.#exits.close();
    this.#ready = false;
  }
}
