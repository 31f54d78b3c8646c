// Tasks (containerd.services.tasks.v1): a container's running processes,
// driven through its shim: the init process, processes exec'd beside it
// (named by an exec id), their cgroup limits and usage.
import { packLinuxResources, type Any } from './any.js';
import { decodeCgroupMetrics, type TaskMetrics } from './cgroup-metrics.js';
import type { CallOptions, Connection } from './connection.js';
import type { Mount } from './snapshots.js';
import { toDate, toEpochMs, type Timestamp } from './wire.js';

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

/** A process to run in a running task (Tasks.Exec); it waits for start(containerId, execId). */
export interface NewExecProcess {
  containerId: string;
  /** Names the process in start, wait, kill and deleteProcess; unique within the task. */
  execId: string;
  /** FIFO paths the shim opens, as for create. */
  stdout?: string;
  stderr?: string;
  /** A runtime-spec Process (packProcessSpec): args, env, cwd, user. */
  spec: Any;
}

/** Which process of a task a call is about: the init process unless execId is given. */
export interface ProcessOptions extends CallOptions {
  execId?: string;
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

/** Names a process in errors: "task foo", or "process sh of task foo". */
function what(containerId: string, execId: string): string {
  return execId ? `process ${execId} of task ${containerId}` : `task ${containerId}`;
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

  /** Starts the init process, or with execId an exec'd one; returns its pid. */
  async start(containerId: string, execId = '', options?: CallOptions): Promise<number> {
    const res = await this.#conn.unary<{ pid: number }>(SERVICE, 'Start', { containerId, execId }, `start ${what(containerId, execId)}`, options);
    return res.pid;
  }

  /**
   * Adds a process to a running task: created, not started. Its exit is a
   * /tasks/exit event with id = execId; deleteProcess reaps it.
   */
  async exec(proc: NewExecProcess, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'Exec', proc, `exec ${what(proc.containerId, proc.execId)}`, options);
  }

  /** Reaps an exec'd process that has exited (the init process goes with delete()). */
  async deleteProcess(containerId: string, execId: string, options?: CallOptions): Promise<ExitInfo> {
    const res = await this.#conn.unary<{ pid: number; exitStatus: number; exitedAt: Timestamp | null }>(
      SERVICE,
      'DeleteProcess',
      { containerId, execId },
      `delete ${what(containerId, execId)}`,
      options,
    );
    return exitFromWire(res);
  }

  /**
   * Sets the task's cgroup limits now: `resources` is a runtime-spec
   * LinuxResources (linux.resources), only the parts to change. The
   * container's spec is not touched; a new task gets the old limits unless
   * the caller also updates the container (Containers.setSpec).
   */
  async update(containerId: string, resources: object, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'Update', { containerId, resources: packLinuxResources(resources) }, `update task ${containerId}`, options);
  }

  /**
   * Usage and limits of the tasks of this namespace that match, in one
   * call. Filters are containerd's: entries ORed, commas within one ANDed,
   * over the task's `id` and `namespace` only (`id==a`, `id~="^a"`); any
   * other field matches nothing, and none means every task. A task that
   * has exited but is not deleted is still listed (pids 0). Left out: a task
   * whose stats the shim could not read (containerd only logs it), and one
   * whose stats are of a type other than cgroups v1/v2. A filter that does
   * not parse is refused as Unknown: containerd 1.6 sends no class for it.
   */
  async metrics(filters: string[] = [], options?: CallOptions): Promise<TaskMetrics[]> {
    const res = await this.#conn.unary<{ metrics: Array<{ id: string; timestamp: Timestamp | null; data: Any | null }> }>(SERVICE, 'Metrics', { filters }, 'task metrics', options);
    const out: TaskMetrics[] = [];
    for (const m of res.metrics) {
      const decoded = m.data ? decodeCgroupMetrics(m.id, m.data) : undefined;
      if (!decoded) continue;
      const at = toEpochMs(m.timestamp);
      if (at !== undefined) decoded.readAtMs = at;
      out.push(decoded);
    }
    return out;
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
  async kill(containerId: string, signal: number, opts: { all?: boolean } & ProcessOptions = {}): Promise<void> {
    const { all = false, execId = '', ...options } = opts;
    await this.#conn.unary(SERVICE, 'Kill', { containerId, execId, signal, all }, `kill ${what(containerId, execId)}`, options);
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
   * Resolves when the task's init process (or the exec'd process execId)
   * exits. It has no deadline by default (a plugin lives as long as it
   * likes); pass a signal to give up.
   */
  async wait(containerId: string, opts: ProcessOptions = {}): Promise<Omit<ExitInfo, 'pid'>> {
    const { execId = '', ...options } = opts;
    const res = await this.#conn.unary<{ exitStatus: number; exitedAt: Timestamp | null }>(
      SERVICE,
      'Wait',
      { containerId, execId },
      `wait ${what(containerId, execId)}`,
      { timeoutMs: Infinity, ...options },
    );
    const { pid: _pid, ...exit } = exitFromWire({ pid: 0, ...res });
    return exit;
  }
}
