// `plugind serve` as an object: embedded (or external) containerd, the
// coordinator and its shard workers, the gRPC API and the metrics server,
// started in an order that loses no exit and stopped in reverse.
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { CodedError, ContainerdSupervisor, ErrorCode, connect, silentLogger, type ContainerdClient, type Logger } from '../containerd/index.js';
import { apiSocketPath, pidFilePath, pluginsDir } from '../common/paths.js';
import { Coordinator } from '../coordinator/index.js';
import { resolveRuntimeBinary, type StdioVia } from '../executor/index.js';
import { ImageStore } from '../images/index.js';
import { ensureFifoKeeper, pipeHolderBinary, runningKeeper, stopFifoKeeper } from '../keeper/index.js';
import { MetricsServer } from './http.js';
import { ApiServer, checkApiAddress, validateApiAddress } from './server.js';
import { DEFAULT_INIT_PATH, DEFAULT_RUNTIME_BINARY } from './wire.js';

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
  /** Plugins that do not say get a static init as PID 1 (`serve --init`). Default false. */
  init?: boolean;
  /** The init binary. Default /usr/bin/tini-static. */
  initPath?: string;
  /** The OCI runtime the runc shim runs for plugins that do not name one: a name on PATH or an absolute path. Default runc. */
  runtimeBinary?: string;
  /** How plugins' output reaches plugind (see executor/stdio-sets.ts). Default pipes. */
  stdio?: StdioVia;
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
  /** The main thread's own containerd connection, for images. */
  #images: ContainerdClient | undefined;
  #metricsAddress: { host: string; port: number } | undefined;
  #stopped = false;
  #locked = false;
  /** The namespace's plugin data dir (FIFOs, logs), once started. */
  #plugins: string | undefined;
  #keeperCheck: NodeJS.Timeout | undefined;
  /** This start launched the FIFO keeper (none ran before). */
  #startedKeeper = false;

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
    return this.#o.address ?? `unix://${apiSocketPath(this.dataDir)}`;
  }

  get metricsAddress(): { host: string; port: number } | undefined {
    return this.#metricsAddress;
  }

  get pidFile(): string {
    return pidFilePath(this.dataDir);
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

  /**
   * Starts everything, in an order that loses no exit. What can be refused
   * (flags, the runtime binary, the data dir lock, the API socket, the
   * metrics port, the group) is checked before containerd or the FIFO
   * keeper starts; a failure after that stops what was started.
   */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async #start(): Promise<void> {
    const o = this.#o;
    const api = { ...(o.tls ? { tls: o.tls } : {}), ...(o.group !== undefined ? { group: o.group } : {}) };
    validateApiAddress(this.apiAddress, api);
    const runtimeBinary = await resolveRuntimeBinary(o.runtimeBinary ?? DEFAULT_RUNTIME_BINARY);
    const stdio = o.stdio ?? 'pipes';
    if (stdio === 'pipes' && !existsSync(pipeHolderBinary())) {
      throw new CodedError(ErrorCode.FailedPrecondition, `pipe holder ${pipeHolderBinary()} is missing: build it with scripts/setup.sh (or serve --stdio fifos)`);
    }
    await mkdir(this.dataDir, { recursive: true, mode: 0o711 });
    await this.#lock();
    await checkApiAddress(this.apiAddress, api);
    const metricsAddress = o.metricsAddress ?? '127.0.0.1:9464';
    if (metricsAddress) {
      this.#metrics = new MetricsServer(this.#log);
      this.#metricsAddress = await this.#metrics.listen(metricsAddress);
      this.#log.info({ metrics: `${this.#metricsAddress.host}:${this.#metricsAddress.port}` }, 'metrics listening');
    }
    let address = o.containerdAddress;
    if (!address) {
      this.#supervisor = new ContainerdSupervisor({ dataDir: this.dataDir, logger: this.#log.child?.({ component: 'containerd' }) ?? this.#log });
      await this.#supervisor.start();
      address = this.#supervisor.address;
    }
    const namespace = o.namespace ?? 'plugind';
    const plugins = pluginsDir(this.dataDir, namespace);
    this.#plugins = plugins;
    // A keeper found running holds plugins' FIFOs and stays whatever happens;
    // one started here is stopped if this start fails.
    const found = await runningKeeper(plugins);
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
    this.#startedKeeper = found === undefined && keeperPid !== undefined;
    // One that dies is started again: it holds every FIFO as it starts.
    this.#keeperCheck = setInterval(() => void keep(), KEEPER_CHECK_MS).unref();
    const co = new Coordinator({
      containerdAddress: address,
      namespace,
      dataDir: this.dataDir,
      workers: o.workers ?? availableParallelism(),
      logLevel: o.logLevel ?? 'info',
      runtimeBinary,
      stdio,
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
    // Pulls stream blobs: on the main thread's connection, not a shard's.
    this.#images = connect({ address, namespace });
    this.#api = new ApiServer({
      coordinator: co,
      images: new ImageStore({ client: this.#images }),
      address: this.apiAddress,
      namespace,
      ready,
      runDefaults: { init: o.init ?? false, initPath: o.initPath ?? DEFAULT_INIT_PATH },
      testHooks: o.testHooks ?? false,
      logger: this.#log,
      ...(o.tls ? { tls: o.tls } : {}),
      ...(o.group !== undefined ? { group: o.group } : {}),
    });
    await this.#api.listen();
    this.#metrics?.attach(co);
    try {
      const counts = await co.start();
      markReady();
      this.#log.info({ ...counts, workers: co.shards.length, namespace, containerd: address, runtimeBinary }, 'plugind ready');
    } catch (err) {
      failReady(err as Error);
      throw err;
    }
  }

  /** Graceful: plugins keep running (the next serve restores them) unless stopPluginsOnExit. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const ready = this.#coordinator?.ready ?? false;
    clearInterval(this.#keeperCheck);
    await this.#api?.close();
    this.#images?.close();
    await this.#coordinator?.close({ stopPlugins: this.#o.stopPluginsOnExit ?? false });
    // The keeper outlives plugind for plugins that outlive it; none do here,
    // nor after a start that failed with a keeper of its own making.
    if (this.#plugins && (this.#o.stopPluginsOnExit || (!ready && this.#startedKeeper))) await stopFifoKeeper(this.#plugins);
    await this.#metrics?.close();
    await this.#supervisor?.stop();
    // Only our own lock: a plugind refused at start must not unlock the one it met.
    if (this.#locked) await rm(this.pidFile, { force: true });
  }
}
