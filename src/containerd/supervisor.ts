// The embedded containerd: when plugind is given no containerd address it runs
// its own, with every path under the data dir, and keeps it alive. Plugins do
// not depend on this process staying up (their shims hold them), so a
// restart here costs only an event gap, which the event layer reconciles.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import { constants as fsc } from 'node:fs';
import { access, mkdir, open, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { delimiter, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerdClient } from './client.js';
import { ContainerdError, ErrorCode } from './errors.js';
import { silentLogger, type Logger } from '../common/log.js';
import { containerdDir } from '../common/paths.js';

export interface SupervisorOptions {
  /** containerd keeps everything under `<dataDir>/containerd`. */
  dataDir: string;
  /** Default: `containerd` found on PATH. */
  binary?: string;
  /** How long containerd may take to answer its health check. Default 30 000 ms. */
  startTimeoutMs?: number;
  /** SIGTERM, then SIGKILL after this long. Default 10 000 ms. */
  stopTimeoutMs?: number;
  /** Restart backoff: doubles from initialMs up to maxMs. Default 200 / 10 000 ms. */
  restartBackoff?: { initialMs?: number; maxMs?: number };
  logger?: Logger;
}

export interface SupervisorEvents {
  /** containerd died unexpectedly; a restart is scheduled. */
  exit: [info: { pid: number; code: number | null; signal: NodeJS.Signals | null }];
  /** A replacement containerd is up and healthy. */
  restart: [info: { pid: number; restarts: number }];
  /** A restart attempt failed; another is scheduled. */
  error: [err: Error];
}

const INSTALL_HINT = 'install: apt-get install containerd runc';
// sun_path holds 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH = 107;
// A containerd that ran this long before dying starts the backoff afresh.
const STABLE_MS = 30_000;

export class ContainerdSupervisor extends EventEmitter<SupervisorEvents> {
  readonly dir: string;
  readonly socketPath: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly pidPath: string;
  readonly #binary: string | undefined;
  readonly #startTimeoutMs: number;
  readonly #stopTimeoutMs: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #log: Logger;
  #child: ChildProcess | undefined;
  #childExit: Promise<unknown> | undefined;
  #startedAt = 0;
  #backoffMs: number;
  #restartTimer: NodeJS.Timeout | undefined;
  #restarts = 0;
  #stopping = false;
  #resolvedBinary: string | undefined;

  constructor(options: SupervisorOptions) {
    super();
    if (!options.dataDir) throw new ContainerdError(ErrorCode.InvalidArgument, 'supervisor: dataDir is required');
    this.dir = containerdDir(resolve(options.dataDir));
    this.socketPath = join(this.dir, 'containerd.sock');
    this.configPath = join(this.dir, 'config.toml');
    this.logPath = join(this.dir, 'containerd.log');
    this.pidPath = join(this.dir, 'containerd.pid');
    // The ttrpc socket is the longer of the two.
    if (Buffer.byteLength(this.socketPath + '.ttrpc') > MAX_SOCKET_PATH) {
      throw new ContainerdError(
        ErrorCode.InvalidArgument,
        `data dir ${options.dataDir} is too long: containerd's socket path ${this.socketPath}.ttrpc exceeds ${MAX_SOCKET_PATH} bytes`,
      );
    }
    this.#binary = options.binary;
    this.#startTimeoutMs = options.startTimeoutMs ?? 30_000;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.#backoffInitialMs = options.restartBackoff?.initialMs ?? 200;
    this.#backoffMaxMs = options.restartBackoff?.maxMs ?? 10_000;
    this.#backoffMs = this.#backoffInitialMs;
    this.#log = options.logger ?? silentLogger;
  }

  /** `unix://…` address for clients. */
  get address(): string {
    return `unix://${this.socketPath}`;
  }

  /** Pid of the running containerd, if any. */
  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
  }

  get restarts(): number {
    return this.#restarts;
  }

  /**
   * Writes the config, replaces a containerd left behind on this data dir by
   * a plugind that died, starts containerd and waits until it is healthy.
   */
  async start(): Promise<void> {
    if (this.#child) throw new ContainerdError(ErrorCode.FailedPrecondition, 'supervisor: already started');
    this.#stopping = false;
    this.#resolvedBinary = await this.#findBinaries();
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    await writeFile(this.configPath, this.#config(), { mode: 0o600 });
    await this.#replaceLeftover();
    await this.#launch();
  }

  async #findBinaries(): Promise<string> {
    const binary = this.#binary ?? (await findOnPath('containerd'));
    if (!binary) throw new ContainerdError(ErrorCode.FailedPrecondition, `containerd not found on PATH; ${INSTALL_HINT}`);
    if (this.#binary) {
      try {
        await access(binary, fsc.X_OK);
      } catch {
        throw new ContainerdError(ErrorCode.FailedPrecondition, `containerd binary ${binary} is not executable; ${INSTALL_HINT}`);
      }
    }
    // The runc v2 shim execs runc for every task; without it nothing runs.
    if (!(await findOnPath('runc'))) throw new ContainerdError(ErrorCode.FailedPrecondition, `runc not found on PATH; ${INSTALL_HINT}`);
    return binary;
  }

  #config(): string {
    const q = (s: string): string => JSON.stringify(s);
    return [
      '# Written by plugind for its embedded containerd; rewritten at every start.',
      'version = 2',
      `root = ${q(join(this.dir, 'root'))}`,
      `state = ${q(join(this.dir, 'state'))}`,
      // CRI is Kubernetes' business; the others probe for storage we never use.
      'disabled_plugins = [',
      '  "io.containerd.grpc.v1.cri",',
      '  "io.containerd.snapshotter.v1.aufs",',
      '  "io.containerd.snapshotter.v1.btrfs",',
      '  "io.containerd.snapshotter.v1.devmapper",',
      '  "io.containerd.snapshotter.v1.zfs",',
      '  "io.containerd.tracing.processor.v1.otlp",',
      '  "io.containerd.internal.v1.tracing",',
      ']',
      '',
      '[grpc]',
      `  address = ${q(this.socketPath)}`,
      '  tcp_address = ""',
      '',
      '[ttrpc]',
      `  address = ${q(this.socketPath + '.ttrpc')}`,
      '',
      '[debug]',
      '  address = ""',
      '  level = "info"',
      '',
      '[metrics]',
      '  address = ""',
      '',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${q(join(this.dir, 'opt'))}`,
      '',
    ].join('\n');
  }

  /**
   * A plugind that was SIGKILLed leaves its containerd running (it runs in a
   * process group of its own). Two containerds must never share a root, so
   * the leftover is stopped before ours starts; its plugins' shims live on.
   */
  async #replaceLeftover(): Promise<void> {
    for (const pid of await findByConfig(this.configPath)) {
      this.#log.warn({ pid }, 'stopping containerd left running on this data dir');
      await terminate(pid, this.#stopTimeoutMs);
    }
  }

  async #launch(): Promise<void> {
    const binary = this.#resolvedBinary;
    if (!binary) throw new ContainerdError(ErrorCode.FailedPrecondition, 'supervisor: not started');
    await rm(this.socketPath, { force: true });
    const logFile = await open(this.logPath, 'a', 0o600);
    let child: ChildProcess;
    let spawned: Promise<Error | undefined>;
    try {
      // detached: its own process group, so a ^C aimed at plugind does not
      // reach containerd before plugind has shut down in order.
      child = spawn(binary, ['--config', this.configPath], { stdio: ['ignore', logFile.fd, logFile.fd], detached: true });
      // Listen before the next await: 'spawn' fires on the next tick.
      spawned = once(child, 'spawn').then(
        () => undefined,
        (err: Error) => err,
      );
      this.#childExit = once(child, 'exit').catch(() => undefined);
    } finally {
      await logFile.close();
    }
    this.#child = child;
    const spawnErr = await spawned;
    if (spawnErr) {
      this.#child = undefined;
      throw new ContainerdError(ErrorCode.FailedPrecondition, `cannot start ${binary}: ${spawnErr.message}`, { cause: spawnErr });
    }
    const pid = child.pid as number;
    this.#startedAt = Date.now();
    child.once('exit', (code, signal) => this.#onExit(child, pid, code, signal));
    await writeFile(this.pidPath, `${pid}\n`);
    try {
      await this.#waitHealthy(child);
    } catch (err) {
      await this.#kill(child);
      this.#child = undefined;
      throw err;
    }
    this.#log.info({ pid, address: this.address }, 'containerd is up');
  }

  async #waitHealthy(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + this.#startTimeoutMs;
    const client = new ContainerdClient({ address: this.address, namespace: 'default', timeoutMs: 1000 });
    try {
      for (;;) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new ContainerdError(
            ErrorCode.Unavailable,
            `containerd exited during start-up (${child.exitCode ?? child.signalCode}); its log ${this.logPath} ends:\n${await tail(this.logPath, 2000)}`,
          );
        }
        try {
          if ((await client.health({ timeoutMs: 500 })) === 'SERVING') return;
        } catch {
          /* not listening yet */
        }
        if (Date.now() > deadline) {
          throw new ContainerdError(ErrorCode.DeadlineExceeded, `containerd did not become healthy within ${this.#startTimeoutMs} ms; see ${this.logPath}`);
        }
        await sleep(50);
      }
    } finally {
      client.close();
    }
  }

  #onExit(child: ChildProcess, pid: number, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    if (this.#stopping) return;
    if (Date.now() - this.#startedAt > STABLE_MS) this.#backoffMs = this.#backoffInitialMs;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, this.#backoffMaxMs);
    this.#log.error({ pid, code, signal, restartInMs: delay }, 'containerd exited; restarting');
    this.emit('exit', { pid, code, signal });
    this.#scheduleRestart(delay);
  }

  #scheduleRestart(delay: number): void {
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopping) return;
      this.#launch().then(
        () => {
          this.#restarts += 1;
          this.emit('restart', { pid: this.#child?.pid as number, restarts: this.#restarts });
        },
        (err: Error) => {
          if (this.#stopping) return;
          const next = this.#backoffMs;
          this.#backoffMs = Math.min(this.#backoffMs * 2, this.#backoffMaxMs);
          this.#log.error({ err, restartInMs: next }, 'containerd restart failed');
          if (this.listenerCount('error') > 0) this.emit('error', err);
          this.#scheduleRestart(next);
        },
      );
    }, delay);
  }

  async #kill(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit').catch(() => undefined);
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), this.#stopTimeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** Stops containerd (SIGTERM, SIGKILL after stopTimeoutMs) and any pending restart. Idempotent. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    const child = this.#child;
    if (child) {
      await this.#kill(child);
      await this.#childExit;
      this.#child = undefined;
      this.#log.info({ pid: child.pid }, 'containerd stopped');
    }
    await rm(this.pidPath, { force: true });
  }
}

async function findOnPath(name: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      await access(candidate, fsc.X_OK);
      return candidate;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** Pids of containerd processes started with `--config <configPath>`. */
async function findByConfig(configPath: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let argv: string[];
    try {
      argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    } catch {
      continue;
    }
    const i = argv.indexOf('--config');
    if (i >= 0 && argv[i + 1] === configPath && (argv[0] ?? '').endsWith('containerd')) found.push(pid);
  }
  return found;
}

// A zombie counts as gone: whether it is ever reaped depends on who its
// parent became, which is not ours to wait for.
async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** SIGTERM a process we did not start, SIGKILL after timeoutMs; resolves when it is gone. */
async function terminate(pid: number, timeoutMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (await alive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        return;
      }
    }
    await sleep(20);
  }
}

async function tail(path: string, bytes: number): Promise<string> {
  try {
    const text = await readFile(path, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}
