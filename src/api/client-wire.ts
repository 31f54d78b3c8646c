// What the client's calls return, and how it reads them off the wire: the
// plugind.v1 messages as plain objects with Dates and optional fields.
import { hasResources, pickResources, type Resources } from '../common/resources.js';
import { timestampMs, type Timestamp } from './wire.js';
import type { TaskMetrics } from '../containerd/index.js';

export interface Plugin {
  id: string;
  state: 'created' | 'running' | 'stopped' | 'paused';
  pid: number;
  shard: number;
  createdAt: Date | undefined;
  exitStatus?: number;
  exitedAt?: Date;
  restart: string;
  autoRemove: boolean;
  /** Absolute path of the OCI runtime its shim runs; empty: runc on the shim's PATH. */
  runtimeBinary: string;
  /** The image it runs from (run --image), as pulled; '' for other plugins. */
  image: string;
  /** Restarts by its policy since the user's last run. */
  restartCount: number;
  /** While a restart by its policy is pending: when it is due. */
  nextRestartAt?: Date;
  /** Its last exit was an OOM kill. */
  oomKilled: boolean;
  /** Its limits (run --memory, --cpus, --pids-limit; update); absent when it has none. */
  resources?: Resources;
  /** A Docker plugin's (run from a bundle or an image); absent for other plugins. */
  bundle?: PluginBundleInfo;
  /** What its health checks found since its task started; absent without a check. */
  health?: PluginHealth;
  /** Its check (docker's defaults filled in); cmd '' : its socket is dialled. Absent without one. */
  healthCheck?: HealthCheck;
  /** Its log file on the host (CRI format). */
  logPath: string;
}

export interface PluginHealth {
  status: 'starting' | 'healthy' | 'unhealthy';
  failingStreak: number;
  /** The last five checks, oldest first; exitCode 0 healthy, 1 unhealthy, -1 could not run or timed out. */
  log: Array<{ start: Date | undefined; end: Date | undefined; exitCode: number; output: string }>;
}

/** run's --health-* flags (times in seconds); disabled is --no-healthcheck. */
export interface HealthCheck {
  cmd?: string;
  intervalSeconds?: number;
  timeoutSeconds?: number;
  retries?: number;
  startPeriodSeconds?: number;
  disabled?: boolean;
}

/** What inspect shows of a Docker plugin. */
export interface PluginBundleInfo {
  /** Its socket on the host, absolute. */
  socket: string;
  interface: { socket: string; types: string[] };
  /** Host dir behind its PropagatedMount; '' for none. */
  propagatedMount: string;
  ready: boolean;
  privileges: Array<{ name: string; description: string; value: string[] }>;
}

export interface ExitEvent {
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: Date | undefined;
  /** containerd's event timestamp in ms (sub-ms precision), when an event reported it. */
  eventTimestampMs?: number;
  /** The kernel's OOM killer ended it. */
  oomKilled?: boolean;
}

/** What an exec streams: its output as it comes, then (last) its exit status. */
export type ExecOutput = { stream: 'stdout' | 'stderr'; data: Buffer } | { exitStatus: number };

export interface RunOptions {
  rootfs?: string;
  args?: string[];
  env?: string[];
  /** The OCI spec as JSON text. */
  specJson?: string;
  autoRemove?: boolean;
  restart?: string;
  log?: { mode?: string; maxSize?: number; maxFiles?: number; bufferSize?: number };
  /** Replace a stopped plugin of this id. */
  replace?: boolean;
  /** Run a static init as PID 1; unset: plugind's default (`serve --init`). */
  init?: boolean;
  /** The OCI runtime for the runc shim: a name on plugind's PATH or an absolute path; unset: `serve --runtime-binary`. */
  runtimeBinary?: string;
  /** A Docker plugin bundle dir (absolute): config.json and rootfs/. args after it replace the config's Args. */
  bundle?: string;
  /** A pulled plugin image's reference: a Docker plugin with a snapshot of it as its rootfs. */
  image?: string;
  /** How long run waits for a bundle's socket; unset: 10 s. */
  readyTimeoutSeconds?: number;
  /** Limits: memory in bytes, CPUs as cores, a pids limit. */
  resources?: Resources;
  healthCheck?: HealthCheck;
}

/** A plugin image in plugind's store. */
export interface Image {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  createdAt: Date | undefined;
  /** Plugins that run from it. */
  plugins: string[];
}

/** One message of a pull: progress on a blob, or (last) the image. */
export interface PullEvent {
  digest: string;
  kind: string;
  status: string;
  done: number;
  total: number;
  image?: Image;
}

export interface PullOptions {
  insecureRegistry?: boolean;
  username?: string;
  password?: string;
}

export interface WireImage extends Omit<Image, 'createdAt'> {
  createdAt: Timestamp | null;
}

export function image(i: WireImage): Image {
  return { name: i.name, digest: i.digest, mediaType: i.mediaType, size: i.size, createdAt: date(i.createdAt), plugins: i.plugins };
}

export function date(t: Timestamp | null | undefined): Date | undefined {
  const ms = timestampMs(t);
  return ms === undefined ? undefined : new Date(Math.floor(ms));
}

export interface WirePlugin extends Omit<Plugin, 'createdAt' | 'exitedAt' | 'exitStatus' | 'bundle' | 'nextRestartAt' | 'resources' | 'health' | 'healthCheck'> {
  resources: Resources | null;
  health: { status: PluginHealth['status']; failingStreak: number; log: Array<{ start: Timestamp | null; end: Timestamp | null; exitCode: number; output: string }> } | null;
  healthCheck: { cmd: string; intervalSeconds?: number; timeoutSeconds?: number; retries?: number; startPeriodSeconds?: number } | null;
  createdAt: Timestamp | null;
  nextRestartAt: Timestamp | null;
  socket: string;
  interface: PluginBundleInfo['interface'] | null;
  propagatedMount: string;
  ready: boolean;
  privileges: PluginBundleInfo['privileges'];
  exited: boolean;
  exitStatus: number;
  exitedAt: Timestamp | null;
}

export function plugin(p: WirePlugin): Plugin {
  const out: Plugin = {
    id: p.id,
    state: p.state,
    pid: p.pid,
    shard: p.shard,
    createdAt: date(p.createdAt),
    restart: p.restart,
    autoRemove: p.autoRemove,
    runtimeBinary: p.runtimeBinary,
    image: p.image ?? '',
    restartCount: p.restartCount ?? 0,
    oomKilled: p.oomKilled ?? false,
    logPath: p.logPath ?? '',
  };
  const r = pickResources(p.resources);
  if (hasResources(r)) out.resources = r;
  const next = date(p.nextRestartAt);
  if (next) out.nextRestartAt = next;
  if (p.health) {
    out.health = { status: p.health.status, failingStreak: p.health.failingStreak, log: p.health.log.map((r) => ({ start: date(r.start), end: date(r.end), exitCode: r.exitCode, output: r.output })) };
  }
  if (p.healthCheck) {
    const { cmd, intervalSeconds, timeoutSeconds, retries, startPeriodSeconds } = p.healthCheck;
    out.healthCheck = { cmd, intervalSeconds, timeoutSeconds, retries, startPeriodSeconds } as HealthCheck;
  }
  if (p.socket) {
    out.bundle = {
      socket: p.socket,
      interface: { socket: p.interface?.socket ?? '', types: p.interface?.types ?? [] },
      propagatedMount: p.propagatedMount,
      ready: p.ready,
      privileges: p.privileges.map((x) => ({ name: x.name, description: x.description, value: x.value })),
    };
  }
  if (p.exited) {
    out.exitStatus = p.exitStatus;
    const at = date(p.exitedAt);
    if (at) out.exitedAt = at;
  }
  return out;
}

/** One plugin's usage as Stats reads it: the same numbers Tasks.Metrics gave its shard. */
export type PluginStats = TaskMetrics;

export interface WireStats {
  id: string;
  cpuNs: number;
  memoryBytes: number;
  memoryLimitBytes?: number;
  pids: number;
  readAt: Timestamp | null;
}

export function pluginStats(w: WireStats): PluginStats {
  const out: PluginStats = { id: w.id, cpuNs: w.cpuNs, memoryBytes: w.memoryBytes, pids: w.pids };
  if (typeof w.memoryLimitBytes === 'number') out.memoryLimitBytes = w.memoryLimitBytes;
  const at = timestampMs(w.readAt);
  if (at !== undefined) out.readAtMs = at;
  return out;
}
