// One shard: a piscina pool of exactly one thread, kept alive. When the
// thread dies, every request pending on it is rejected with an error that
// says so, the fds its log files held are closed, and a fresh thread is
// started that restores the shard's plugins (they never stopped: their
// shims hold them).
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { CodedError, ErrorCode } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/log.js';
import { FdLedger } from './fd-ledger.js';
import type { RestoreCounts, Result, ShardNotice, ShardPush, ShardReplies, ShardRequest, WorkerConfig } from './protocol.js';

type Kind = ShardRequest['kind'];
type RequestOf<K extends Kind> = Extract<ShardRequest, { kind: K }>;

/** Young generation of a shard worker's isolate, MiB (three semi-spaces' worth). */
const WORKER_YOUNG_GENERATION_MB = 3;

export interface ShardOptions {
  index: number;
  config: Omit<WorkerConfig, 'shard' | 'fdLedger'>;
  onPush: (push: ShardPush) => void;
  /** A replacement thread is up and has restored the shard. */
  onReplaced: (info: { shard: number; reason: string; counts: RestoreCounts }) => void;
  logger?: Logger;
}

/** The worker entry: compiled next to us, or the TypeScript source under tsx. */
function workerFile(): string {
  const js = fileURLToPath(new URL('../../workers/shard-worker.js', import.meta.url));
  return existsSync(js) ? js : js.replace(/\.js$/, '.ts');
}

export class ShardError extends CodedError {
  override readonly name = 'ShardError';
}

export class Shard {
  readonly index: number;
  readonly #o: ShardOptions;
  readonly #log: Logger;
  #pool!: Piscina;
  #ledger!: SharedArrayBuffer;
  /** Our end of the current thread's notice port (see init()). */
  #notices!: MessagePort;
  /** The thread's end, until init() hands it over. */
  #theirs: MessagePort | undefined;
  #closing = false;
  #replacing: Promise<void> | undefined;

  constructor(options: ShardOptions) {
    this.index = options.index;
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#spawn();
  }

  #spawn(): void {
    this.#ledger = FdLedger.allocate();
    // Notices posted before the thread takes its end wait in the port.
    this.#notices?.close();
    const { port1, port2 } = new MessageChannel();
    port1.unref();
    this.#notices = port1;
    this.#theirs = port2;
    const filename = workerFile();
    // Run from source, a worker needs tsx's loader like its parent.
    // Heap sizes are the thread's own (resourceLimits): Worker refuses the main thread's flags for them.
    const inherited = process.execArgv.filter((a) => !/^--max-(semi|old)-space-size/.test(a));
    const execArgv = filename.endsWith('.ts') && !inherited.includes('tsx') ? [...inherited, '--import', 'tsx'] : inherited;
    const pool = new Piscina({
      filename,
      execArgv,
      minThreads: 1,
      maxThreads: 1,
      // Operations on different plugins overlap inside the worker.
      concurrentTasksPerWorker: 1 << 16,
      idleTimeout: Infinity,
      // 'sync' would freeze the worker's event loop (timers, sockets) between tasks.
      atomics: 'disabled',
      // Log-file fds are tracked by the FdLedger; Node's tracking would also
      // close FIFO fds that libuv already closed through their sockets.
      trackUnmanagedFds: false,
      // A small young generation (≈ 1 MiB semi-spaces): V8's default lets each
      // isolate's nursery grow to 16 MiB semi-spaces, which a worker's garbage
      // (stdio chunks, RPC messages) fills and keeps resident; measured, this
      // takes ≈ 60 MB off plugind's RSS with 1,000 plugins held, at no CPU
      // cost that a lifecycle or a flood shows (bench/README.md).
      resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB },
      workerData: { ...this.#o.config, shard: this.index, fdLedger: this.#ledger } satisfies WorkerConfig,
    });
    pool.on('message', (m: ShardPush) => this.#o.onPush(m));
    pool.on('workerDestroy', () => {
      if (!this.#closing && pool === this.#pool) void this.#replace('worker thread exited');
    });
    // Without a listener an 'error' (a worker dying with no task pending) would be thrown.
    pool.on('error', (err: Error) => {
      if (!this.#closing && pool === this.#pool) void this.#replace(err.message);
    });
    this.#pool = pool;
  }

  async #replace(reason: string): Promise<void> {
    if (this.#replacing) return this.#replacing;
    this.#replacing = (async () => {
      let delay = 100;
      let why = reason;
      while (!this.#closing) {
        const old = this.#pool;
        const ledger = new FdLedger(this.#ledger);
        this.#log.error({ shard: this.index, reason: why }, 'shard worker died; starting a new one');
        this.#spawn();
        await old.destroy().catch(() => {});
        const closed = ledger.closeAll();
        try {
          const counts = await this.init();
          this.#log.info({ shard: this.index, closedFds: closed, ...counts }, 'shard worker replaced and restored');
          this.#o.onReplaced({ shard: this.index, reason, counts });
          return;
        } catch (err) {
          // The new thread failed too (it could not start, or restore failed):
          // try again, backing off, rather than leave the shard without a thread.
          why = (err as Error).message;
          await sleep(delay);
          delay = Math.min(delay * 2, 10_000);
        }
      }
    })().finally(() => {
      this.#replacing = undefined;
    });
    return this.#replacing;
  }

  /** Restores the shard's plugins on its thread (once per thread), handing it the notice port. */
  init(): Promise<RestoreCounts> {
    const port = this.#theirs;
    if (!port) return this.request({ kind: 'init' });
    this.#theirs = undefined;
    return this.request({ kind: 'init', notices: port }, [port]);
  }

  /** One way: lost with a thread that dies, whose replacement's restore finds the exit again. */
  notify(notice: ShardNotice): void {
    this.#notices.postMessage(notice);
  }

  /** Runs one request on the shard's thread; rejects with the worker's error, code intact. */
  async request<K extends Kind>(req: RequestOf<K>, transferList?: MessagePort[]): Promise<ShardReplies[K]> {
    if (this.#closing && req.kind !== 'shutdown') throw new ShardError(ErrorCode.Unavailable, `shard ${this.index} is shutting down`);
    let result: Result<ShardReplies[K]>;
    try {
      result = (await this.#pool.run(req, transferList ? { transferList: transferList as never } : {})) as Result<ShardReplies[K]>;
    } catch (err) {
      throw new ShardError(
        ErrorCode.Unavailable,
        `${describe(req)}: shard ${this.index} worker died before answering (${(err as Error).message}); it is being replaced, retry`,
        { cause: err },
      );
    }
    if (result.ok) return result.value;
    const e = new ShardError(result.error.code, result.error.message);
    if (result.error.stack) e.stack = result.error.stack;
    throw e;
  }

  async close(stopPlugins: boolean): Promise<void> {
    await this.#replacing?.catch(() => {});
    await this.request({ kind: 'shutdown', stopPlugins }).catch((err: Error) =>
      this.#log.warn({ shard: this.index, err }, 'shard shutdown request failed'),
    );
    this.#closing = true;
    this.#notices.close();
    await this.#pool.destroy();
  }
}

function describe(req: ShardRequest): string {
  return 'id' in req ? `${req.kind} plugin ${req.id}` : req.kind;
}
