// `plugind serve` as an object: embedded (or external) containerd, the
// coordinator and its shard workers, the gRPC API and the metrics server,
// started in an order that loses no exit and stopped in reverse.
import { availableParallelism } from 'node:os';
import { mkdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CodedError, ContainerdSupervisor, ErrorCode, silentLogger, type Logger } from '../containerd/index.js';
import { Coordinator, pluginsDir } from '../coordinator/index.js';
import { ensureFifoKeeper, stopFifoKeeper } from '../executor/fifo-keeper.js';
import { MetricsServer } from './http.js';
import { ApiServer } from './server.js';
import { parseApiAddress, readTls } from './wire.js';

// How often serve checks that its FIFO keeper still runs.
const KEEPER_CHECK_MS = 10_000;

export interface ServiceOptions {
  dataDir: string;
  /** Use this containerd; unset: start and supervise one under the data dir. */
  containerdAddress?: string;
  /** Default "plugind". */
  namespace?: string;
  /** Shard worker threads. Default: CPU count. */
  workers?: number;
  /** Default unix://<dataDir>/plugind.sock. */
  address?: string;
  /** Default 127.0.0.1:9464; empty string: no metrics server. */
  metricsAddress?: string;
  stopPluginsOnExit?: boolean;
  /** API unix socket mode 0660 for this group (name or gid). */
  group?: string;
  /** Mutual TLS for a tcp:// API address (required off loopback). */
  tls?: { cert?: string; key?: string; ca?: string };
  logLevel?: string;
  testHooks?: boolean;
  logger?: Logger;
}

export class Service {
  readonly dataDir: string;
  readonly #o: ServiceOptions;
  readonly #log: Logger;
  #supervisor: ContainerdSupervisor | undefined;
  #coordinator: Coordinator | undefined;
  #api: ApiServer | undefined;
  #metrics: MetricsServer | undefined;
  #metricsAddress: { host: string; port: number } | undefined;
  #stopped = false;
  #locked = false;
  /** The namespace's plugin data dir (FIFOs, logs), once started. */
  #plugins: string | undefined;
  #keeperCheck: NodeJS.Timeout | undefined;

  constructor(options: ServiceOptions) {
    this.#o = options;
    this.dataDir = resolve(options.dataDir);
    this.#log = options.logger ?? silentLogger;
  }

  get coordinator(): Coordinator {
    if (!this.#coordinator) throw new CodedError(ErrorCode.FailedPrecondition, 'service not started');
    return this.#coordinator;
  }

  get apiAddress(): string {
    return this.#o.address ?? `unix://${join(this.dataDir, 'plugind.sock')}`;
  }

  get metricsAddress(): { host: string; port: number } | undefined {
    return this.#metricsAddress;
  }

  get pidFile(): string {
    return join(this.dataDir, 'plugind.pid');
  }

  /**
   * One plugind per data dir: a pid file naming a live node process (the
   * runtime plugind runs on) that is not us means another plugind has it.
   * The API socket check in ApiServer.listen() is the second guard.
   */
  async #lock(): Promise<void> {
    const prev = Number((await readFile(this.pidFile, 'utf8').catch(() => '')).trim());
    if (prev && prev !== process.pid) {
      const exe = await readlink(`/proc/${prev}/exe`).catch(() => '');
      const ours = await realpath(process.execPath).catch(() => process.execPath);
      if (exe === ours) throw new CodedError(ErrorCode.AlreadyExists, `another plugind (pid ${prev}) is using data dir ${this.dataDir}`);
    }
    await writeFile(this.pidFile, `${process.pid}\n`);
    this.#locked = true;
  }

  async start(): Promise<void> {
    const o = this.#o;
    // A bad address or TLS setting fails here, before anything is started.
    parseApiAddress(this.apiAddress, { tls: Boolean(readTls(o.tls ?? {})) });
    await mkdir(this.dataDir, { recursive: true, mode: 0o711 });
    await this.#lock();
    let address = o.containerdAddress;
    if (!address) {
      this.#supervisor = new ContainerdSupervisor({ dataDir: this.dataDir, logger: this.#log.child?.({ component: 'containerd' }) ?? this.#log });
      await this.#supervisor.start();
      address = this.#supervisor.address;
    }
    const namespace = o.namespace ?? 'plugind';
    const plugins = pluginsDir(this.dataDir, namespace);
    this.#plugins = plugins;
    let keeperPid: number | undefined;
    const keep = async (): Promise<void> => {
      try {
        const pid = await ensureFifoKeeper(plugins);
        if (pid !== keeperPid) this.#log.info({ pid, replaced: keeperPid }, 'FIFO keeper running');
        keeperPid = pid;
      } catch (err) {
        this.#log.warn({ err }, 'no FIFO keeper: output written by plugins that exit while plugind is down can be lost');
      }
    };
    await keep();
    // One that dies is started again: it holds every FIFO as it starts.
    this.#keeperCheck = setInterval(() => void keep(), KEEPER_CHECK_MS).unref();
    const co = new Coordinator({
      containerdAddress: address,
      namespace,
      dataDir: this.dataDir,
      workers: o.workers ?? availableParallelism(),
      logLevel: o.logLevel ?? 'info',
      logger: this.#log,
      testHooks: o.testHooks ?? false,
    });
    this.#coordinator = co;
    let markReady!: () => void;
    let failReady!: (err: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      markReady = res;
      failReady = rej;
    });
    ready.catch(() => {});
    this.#api = new ApiServer({
      coordinator: co,
      address: this.apiAddress,
      namespace,
      ready,
      testHooks: o.testHooks ?? false,
      logger: this.#log,
      ...(o.tls ? { tls: o.tls } : {}),
      ...(o.group !== undefined ? { group: o.group } : {}),
    });
    await this.#api.listen();
    const metricsAddress = o.metricsAddress ?? '127.0.0.1:9464';
    if (metricsAddress) {
      this.#metrics = new MetricsServer(co, this.#log);
      this.#metricsAddress = await this.#metrics.listen(metricsAddress);
      this.#log.info({ metrics: `${this.#metricsAddress.host}:${this.#metricsAddress.port}` }, 'metrics listening');
    }
    try {
      const counts = await co.start();
      markReady();
      this.#log.info({ ...counts, workers: co.shards.length, namespace, containerd: address }, 'plugind ready');
    } catch (err) {
      failReady(err as Error);
      throw err;
    }
  }

  /** Graceful: plugins keep running (the next serve restores them) unless stopPluginsOnExit. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#keeperCheck);
    await this.#api?.close();
    await this.#coordinator?.close({ stopPlugins: this.#o.stopPluginsOnExit ?? false });
    // The keeper outlives plugind for plugins that outlive it; none do here.
    if (this.#o.stopPluginsOnExit && this.#plugins) await stopFifoKeeper(this.#plugins);
    await this.#metrics?.close();
    await this.#supervisor?.stop();
    // Only our own lock: a plugind refused at start must not unlock the one it met.
    if (this.#locked) await rm(this.pidFile, { force: true });
  }
}
