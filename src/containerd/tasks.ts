// Tasks (containerd.services.tasks.v1): a container's running process, driven
// through its shim. plugind only uses init processes (no exec).
import type { Any } from './any.js';
import type { CallOptions, Connection } from './connection.js';
import type { Mount } from './snapshots.js';
import { toDate, type Timestamp } from './wire.js';

const SERVICE = 'containerd.services.tasks.v1.Tasks';

export type TaskStatus = 'unknown' | 'created' | 'running' | 'stopped' | 'paused' | 'pausing';

export interface Process {
  containerId: string;
  pid: number;
  status: TaskStatus;
  /** FIFO paths the task was created with. */
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt?: Date;
}

export interface NewTask {
  containerId: string;
  /** The rootfs as mounts (a snapshot's); none when the spec's root.path is a directory. */
  rootfs?: Mount[];
  stdout?: string;
  stderr?: string;
  /** Replaces the container's runtime options when set. */
  options?: Any;
}

export interface ExitInfo {
  pid: number;
  exitStatus: number;
  exitedAt?: Date;
}

interface WireProcess {
  containerId: string;
  id: string;
  pid: number;
  status: string;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt: Timestamp | null;
}

function processFromWire(p: WireProcess): Process {
  const out: Process = {
    // containerd 1.6 fills only `id` (the container id, for an init process).
    containerId: p.containerId || p.id,
    pid: p.pid,
    status: p.status.toLowerCase() as TaskStatus,
    stdin: p.stdin,
    stdout: p.stdout,
    stderr: p.stderr,
    terminal: p.terminal,
    exitStatus: p.exitStatus,
  };
  const exitedAt = toDate(p.exitedAt);
  if (exitedAt) out.exitedAt = exitedAt;
  return out;
}

function exitFromWire(r: { pid: number; exitStatus: number; exitedAt: Timestamp | null }): ExitInfo {
  const out: ExitInfo = { pid: r.pid, exitStatus: r.exitStatus };
  const exitedAt = toDate(r.exitedAt);
  if (exitedAt) out.exitedAt = exitedAt;
  return out;
}

export class Tasks {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** Creates the task (runc create); returns the init pid. The process waits for start(). */
  async create(task: NewTask, options?: CallOptions): Promise<number> {
    const res = await this.#conn.unary<{ pid: number }>(SERVICE, 'Create', task, `create task ${task.containerId}`, options);
    return res.pid;
  }

  async start(containerId: string, options?: CallOptions): Promise<number> {
    const res = await this.#conn.unary<{ pid: number }>(SERVICE, 'Start', { containerId }, `start task ${containerId}`, options);
    return res.pid;
  }

  async get(containerId: string, options?: CallOptions): Promise<Process> {
    const res = await this.#conn.unary<{ process: WireProcess }>(SERVICE, 'Get', { containerId }, `get task ${containerId}`, options);
    return processFromWire(res.process);
  }

  async list(filter = '', options?: CallOptions): Promise<Process[]> {
    const res = await this.#conn.unary<{ tasks: WireProcess[] }>(SERVICE, 'List', { filter }, 'list tasks', options);
    return res.tasks.map(processFromWire);
  }

  /** NOT_FOUND from containerd here means the process has already exited. */
  async kill(containerId: string, signal: number, opts: { all?: boolean } & CallOptions = {}): Promise<void> {
    const { all = false, ...options } = opts;
    await this.#conn.unary(SERVICE, 'Kill', { containerId, signal, all }, `kill task ${containerId}`, options);
  }

  /** Deletes a stopped (or created, once killed) task, reaping its process. */
  async delete(containerId: string, options?: CallOptions): Promise<ExitInfo> {
    const res = await this.#conn.unary<{ pid: number; exitStatus: number; exitedAt: Timestamp | null }>(
      SERVICE,
      'Delete',
      { containerId },
      `delete task ${containerId}`,
      options,
    );
    return exitFromWire(res);
  }

  /**
   * Resolves when the task's init process exits. It has no deadline by
   * default (a plugin lives as long as it likes); pass a signal to give up.
   */
  async wait(containerId: string, options: CallOptions = {}): Promise<Omit<ExitInfo, 'pid'>> {
    const res = await this.#conn.unary<{ exitStatus: number; exitedAt: Timestamp | null }>(
      SERVICE,
      'Wait',
      { containerId },
      `wait task ${containerId}`,
      { timeoutMs: Infinity, ...options },
    );
    const { pid: _pid, ...exit } = exitFromWire({ pid: 0, ...res });
    return exit;
  }
}
