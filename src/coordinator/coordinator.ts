// The coordinator: shards plugin ids over worker threads (rendezvous
// hashing), holds the one containerd event subscription and routes exits to
// the owning shard, fans handled exits out to listeners, applies restart
// policies, and merges metrics. It never touches a plugin itself.
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { MessageChannel } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { CodedError, ErrorCode, EventLoop, connect, silentLogger, exitEventFilters, type ContainerdClient, type Logger } from '../containerd/index.js';
import { pluginPaths, pluginsDir } from '../common/paths.js';
import {
  validateId,
  type LogChunk,
  type OciSpec,
  type PluginExit,
  type PluginSettingsInput,
  type PluginStatus,
  type StreamName,
} from '../executor/index.js';
import { ServiceMetrics } from './metrics.js';
import { shardOf } from './shard-map.js';
import { LOGS_WINDOW, type LogsControl, type LogsMessage, type RestoreCounts, type ShardPush } from './protocol.js';
import { ReportedExits } from './reported-exits.js';
import { Shard, ShardError } from './shard.js';

export interface CoordinatorOptions {
  /** containerd's address (unix:///…). */
  containerdAddress: string;
  namespace: string;
  /** plugind's data dir; plugin FIFOs and logs go under `plugins/<namespace>`. */
  dataDir: string;
  /** Shard worker threads. Default 2. */
  workers?: number;
  logLevel?: string;
  logger?: Logger;
  /** Enables crashWorker() (tests). */
  testHooks?: boolean;
  /** Restart-policy backoff, doubling from initialMs to maxMs. Default 200 / 10 000 ms. */
  restartBackoff?: { initialMs?: number; maxMs?: number };
}

export interface PluginInfo extends PluginStatus {
  shard: number;
}

export interface CoordinatorEvents {
  /** A plugin exit, handled, exactly once. */
  exit: [exit: PluginExit];
}

const LAG_SEEN_MAX = 4096;

const nowMs = (): number => performance.timeOrigin + performance.now();

export class Coordinator extends EventEmitter<CoordinatorEvents> {
  readonly metrics = new ServiceMetrics(() => this.containerdHealthy());
  readonly shards: Shard[];
  readonly #o: CoordinatorOptions;
  readonly #log: Logger;
  readonly #client: ContainerdClient;
  readonly #loop: EventLoop;
  readonly #restarts = new Map<string, number>();
  readonly #manualStops = new Set<string>();
  /** The pid of the last exit event observed per id: containerd may deliver one twice. */
  readonly #lagSeen = new Map<string, number>();
  /**
   * The last exit told per id, kept across restarts: a worker (or plugind)
   * that died between telling an exit and recording it tells it again.
   */
  readonly #reported: ReportedExits;
  #ready = false;
  #closing = false;

  constructor(options: CoordinatorOptions) {
    super();
    this.setMaxListeners(0);
    const workers = options.workers ?? 2;
    if (!Number.isInteger(workers) || workers < 1 || workers > 256) throw new RangeError(`workers ${workers}: want 1 to 256`);
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#client = connect({ address: options.containerdAddress, namespace: options.namespace });
    const dataDir = pluginsDir(options.dataDir, options.namespace);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    this.#reported = new ReportedExits(pluginPaths(dataDir).reportedExits, (err, first) => {
      this.metrics.stateWriteErrors.inc();
      if (first) this.#log.warn({ err }, 'cannot write reported-exits (full disk?); exits told meanwhile are kept in memory only');
    });
    const config = {
      shards: workers,
      address: options.containerdAddress,
      namespace: options.namespace,
      dataDir,
      logLevel: options.logLevel ?? 'info',
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
          },
        }),
    );
    this.#loop = new EventLoop({
      client: this.#client,
      // Only exits are acted on; the other task events would be decoded for nothing.
      filters: exitEventFilters(options.namespace),
      logger: this.#log,
      onEvent: (ev) => {
        if (ev.topic !== '/tasks/exit') return;
        this.#observeLag(ev.event.containerId, ev.event.id, ev.event.pid, ev.timestampMs);
        this.#shard(ev.event.containerId)
          .request({ kind: 'event', event: ev })
          .catch((err: Error) => this.#log.warn({ plugin: ev.event.containerId, err }, 'exit event not delivered to its shard'));
      },
      onLive: async ({ resubscribed }) => {
        if (!resubscribed) return;
        // Whatever exited while the stream was down is found by listing.
        this.metrics.containerdReconnects.inc();
        const counts = await Promise.all(this.shards.map((s) => s.request({ kind: 'reconcile' })));
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
    const counts = await Promise.all(this.shards.map((s) => s.request({ kind: 'init' })));
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

  #onPush(push: ShardPush): void {
    const { exit } = push;
    if (this.#reported.has(exit.id, exit.pid)) return;
    this.#reported.add(exit.id, exit.pid);
    this.metrics.exits.inc();
    this.emit('exit', exit);
    this.#maybeRestart(push);
  }

  /**
   * Every exit event containerd delivers for a plugin is observed once, as
   * it arrives here, whichever path (the event, or a stop's Wait) handles the
   * exit first: the lag is containerd's timestamp to plugind having it.
   */
  #observeLag(id: string, execId: string, pid: number, timestampMs: number): void {
    if (execId !== id || this.#lagSeen.get(id) === pid) return;
    // Only a repeat soon after matters; the oldest entries go (ids of `run --rm` plugins are never removed here).
    if (this.#lagSeen.size >= LAG_SEEN_MAX) this.#lagSeen.delete(this.#lagSeen.keys().next().value as string);
    this.#lagSeen.delete(id);
    this.#lagSeen.set(id, pid);
    this.metrics.eventLag.observe(Math.max(0, nowMs() - timestampMs) / 1000);
  }

  #maybeRestart({ exit, restart }: ShardPush): void {
    const m = /^on-failure(?::(\d+))?$/.exec(restart);
    const id = exit.id;
    if (!m || exit.exitStatus === 0 || this.#closing || this.#manualStops.has(id)) return;
    const max = m[1] ? Number(m[1]) : Infinity;
    const done = this.#restarts.get(id) ?? 0;
    if (done >= max) {
      this.#log.warn({ plugin: id, restarts: done }, 'restart policy exhausted');
      return;
    }
    this.#restarts.set(id, done + 1);
    const initial = this.#o.restartBackoff?.initialMs ?? 200;
    const delay = Math.min(initial * 2 ** done, this.#o.restartBackoff?.maxMs ?? 10_000);
    this.#log.info({ plugin: id, exitStatus: exit.exitStatus, attempt: done + 1, delayMs: delay }, 'restarting plugin (on-failure)');
    void sleep(delay).then(async () => {
      if (this.#closing || this.#manualStops.has(id) || this.#restarts.get(id) !== done + 1) return;
      this.#reported.delete(id);
      this.metrics.pluginRestarts.inc({ plugin: id });
      await this.#shard(id)
        .request({ kind: 'recreate', id })
        .catch((err: Error) => this.#log.error({ plugin: id, err }, 'restart failed'));
    });
  }

  #info(status: PluginStatus): PluginInfo {
    return { ...status, shard: this.shardOf(status.id) };
  }

  async run(id: string, spec: OciSpec, settings: PluginSettingsInput = {}, options: { replace?: boolean } = {}): Promise<{ pid: number; shard: number }> {
    const receivedAtMs = nowMs();
    validateId(id);
    this.#manualStops.delete(id);
    this.#restarts.delete(id);
    this.#reported.delete(id);
    const shard = this.#shard(id);
    const { pid, startedAtMs } = await shard.request({ kind: 'create', id, spec, settings, replace: options.replace ?? false });
    this.metrics.createDuration.observe(Math.max(0, startedAtMs - receivedAtMs) / 1000);
    return { pid, shard: shard.index };
  }

  async inspect(id: string): Promise<PluginInfo> {
    validateId(id);
    return this.#info(await this.#shard(id).request({ kind: 'status', id }));
  }

  async list(): Promise<PluginInfo[]> {
    const lists = await Promise.all(this.shards.map((s) => s.request({ kind: 'list' })));
    return lists.flat().map((p) => this.#info(p)).sort((a, b) => a.id.localeCompare(b.id));
  }

  async signal(id: string, signal: string | number): Promise<boolean> {
    validateId(id);
    return (await this.#shard(id).request({ kind: 'signal', id, signal })).delivered;
  }

  async stop(id: string, timeoutMs = 10_000): Promise<PluginExit> {
    validateId(id);
    this.#manualStops.add(id);
    return this.#shard(id).request({ kind: 'stop', id, timeoutMs });
  }

  async remove(id: string, force = false): Promise<void> {
    validateId(id);
    if (force) this.#manualStops.add(id);
    await this.#shard(id).request({ kind: 'remove', id, force });
    this.#restarts.delete(id);
    this.#reported.delete(id);
    this.#lagSeen.delete(id);
    this.metrics.pluginRestarts.remove({ plugin: id });
  }

  /**
   * The plugin's output, streamed from its shard over a MessagePort with a
   * credit window: the worker sends at most LOGS_WINDOW bytes ahead of what
   * the consumer has taken. Breaking out of the loop cancels the stream.
   */
  async *logs(id: string, options: { stream?: StreamName; tail?: number; follow?: boolean } = {}): AsyncGenerator<LogChunk> {
    validateId(id);
    // port2 goes to the worker.
    const { port1, port2 } = new MessageChannel();
    const queue: LogsMessage[] = [];
    let wake: (() => void) | undefined;
    port1.on('message', (m: LogsMessage) => {
      queue.push(m);
      wake?.();
    });
    const req = { kind: 'logs' as const, id, follow: options.follow ?? false, port: port2 } as const;
    const done = this.#shard(id).request(
      { ...req, ...(options.stream ? { stream: options.stream } : {}), ...(options.tail !== undefined ? { tail: options.tail } : {}) },
      [port2],
    );
    let failed: unknown;
    done.catch((err: unknown) => {
      failed = err;
      wake?.();
    });
    const grant = (bytes: number): void => port1.postMessage({ kind: 'credit', bytes } satisfies LogsControl);
    grant(LOGS_WINDOW);
    try {
      for (;;) {
        const m = queue.shift();
        if (!m) {
          if (failed) throw failed;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
          continue;
        }
        if (m.kind === 'end') return;
        if (m.kind === 'error') throw new ShardError(m.error.code, m.error.message);
        const data = Buffer.from(m.chunk.data.buffer, m.chunk.data.byteOffset, m.chunk.data.byteLength);
        yield { stream: m.chunk.stream, data };
        grant(data.length);
      }
    } finally {
      port1.postMessage({ kind: 'cancel' } satisfies LogsControl);
      port1.close();
    }
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
      // Exits must still be handled while plugins stop: the loop closes after.
      await Promise.all(this.shards.map((s) => s.close(true)));
      await this.#loop.close();
    } else {
      await this.#loop.close();
      await Promise.all(this.shards.map((s) => s.close(false)));
    }
    this.#client.close();
    this.#reported.close();
    this.#ready = false;
  }
}
