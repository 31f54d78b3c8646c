// Per-plugin settings that must survive a plugind restart live in container
// labels under io.plugind.* (and, for an image's plugin, in the record's own
// image and snapshotter fields): containerd keeps plugins' state, not plugind.
import type { Container } from '../containerd/index.js';
import { MAX_LOG_FILES, MAX_LOG_SIZE } from '../common/limits.js';
import { healthSettings, type HealthInput, type HealthSettings } from '../common/health.js';
import { hasResources, resourcesProblem, type Resources } from '../common/resources.js';
import { RESTART_POLICIES, parseRestartPolicy } from '../common/restart-policy.js';
import { invalidArgument } from './errors.js';
import { DEFAULT_ROTATION } from './log-file.js';
import type { PluginPrivilege } from './plugin-config.js';
import type { LogMode } from './stdio.js';

export const LABEL = {
  managed: 'io.plugind.managed',
  autoRemove: 'io.plugind.auto-remove',
  restart: 'io.plugind.restart',
  runtimeBinary: 'io.plugind.runtime-binary',
  logMode: 'io.plugind.log.mode',
  logMaxSize: 'io.plugind.log.max-size',
  logMaxFiles: 'io.plugind.log.max-files',
  logBufferSize: 'io.plugind.log.buffer-size',
  /** Limits as run or update set them (the spec holds them for the runtime). */
  memory: 'io.plugind.memory',
  cpus: 'io.plugind.cpus',
  pidsLimit: 'io.plugind.pids-limit',
  /** The health check (JSON of HealthSettings); none without it. */
  health: 'io.plugind.health',
  exitStatus: 'io.plugind.exit-status',
  exitedAt: 'io.plugind.exited-at',
  exitPid: 'io.plugind.exit-pid',
  /** The recorded exit was an OOM kill. */
  exitOomKilled: 'io.plugind.exit-oom-killed',
  /** The recorded exit came from a user's stop or kill (`unless-stopped` leaves it stopped). */
  stoppedByUser: 'io.plugind.stopped-by-user',
  /** Restarts by the policy since the user's last run. */
  restartCount: 'io.plugind.restart-count',
  bundleSocket: 'io.plugind.bundle.socket',
  bundleTypes: 'io.plugind.bundle.types',
  bundlePropagatedMount: 'io.plugind.bundle.propagated-mount',
  bundleReadyTimeout: 'io.plugind.bundle.ready-timeout',
  bundlePrivileges: 'io.plugind.bundle.privileges',
} as const;

/** Selects the containers plugind manages (containerd filter syntax). */
export const MANAGED_FILTER = `labels."${LABEL.managed}"==1`;

export interface LogSettings {
  mode: LogMode;
  maxSize: number;
  maxFiles: number;
  /** Non-blocking mode only: bytes per stream waiting for the disk. */
  bufferSize: number;
}

/** What a Docker plugin (run from a bundle or an image) keeps beyond a plain plugin. */
export interface BundleSettings {
  /** Interface.Socket: a file name in the runtime dir. */
  socket: string;
  /** Interface.Types (`docker.volumedriver/1.0`, …). */
  types: string[];
  /** PropagatedMount, the in-container path; '' for none. */
  propagatedMount: string;
  /** How long `run` (and a policy restart) waits for the socket to accept. */
  readyTimeoutMs: number;
  /** What the config asks of the host (see pluginPrivileges). */
  privileges: PluginPrivilege[];
}

/** `run --ready-timeout`'s default. */
export const DEFAULT_READY_TIMEOUT_MS = 10_000;
/** An hour, as long as a stop may wait. */
export const MAX_READY_TIMEOUT_MS = 3_600_000;

export interface PluginSettings {
  /** Delete container and logs once the exit is reaped (`run --rm`). */
  autoRemove: boolean;
  /** Restart policy, kept for the service: `no`, `on-failure`, `on-failure:N`, `always`, `unless-stopped`. */
  restart: string;
  /** The OCI runtime the runc shim runs (its BinaryName), an absolute path; empty: runc on the shim's PATH. */
  runtimeBinary: string;
  log: LogSettings;
  /** Limits (run --memory, --cpus, --pids-limit; plugind update). */
  resources?: Resources;
  /** Its health check (run --health-cmd, or a Docker plugin's socket); none when unset. */
  health?: HealthSettings;
  /** Set for a Docker plugin: its socket is waited for and its host dirs managed. */
  bundle?: BundleSettings;
  /** Set for a plugin run from a pulled image: its rootfs is the snapshot keyed by the plugin id. */
  image?: ImageSettings;
}

/** A plugin's image and the snapshotter its rootfs snapshot (key: the plugin id) lives in. */
export interface ImageSettings {
  ref: string;
  snapshotter: string;
}

export type PluginSettingsInput = Partial<Omit<PluginSettings, 'log' | 'health'>> & { log?: Partial<LogSettings>; health?: HealthInput };

export const DEFAULT_LOG: LogSettings = { mode: 'blocking', ...DEFAULT_ROTATION, bufferSize: 1 << 20 };

function positiveInt(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) throw invalidArgument(`${name} ${String(v)}: want a whole number from 1 to ${max}`);
  return v;
}

/** Checks the settings; runtimeBinary defaults to defaultBinary and is looked up by the caller (see resolveRuntimeBinary). */
export function normalizeSettings(input: PluginSettingsInput = {}, defaultBinary = ''): PluginSettings {
  const log = { ...DEFAULT_LOG, ...input.log };
  if (log.mode !== 'blocking' && log.mode !== 'non-blocking') throw invalidArgument(`log mode ${JSON.stringify(log.mode)}: want blocking or non-blocking`);
  positiveInt('log max size', log.maxSize, MAX_LOG_SIZE);
  positiveInt('log max files', log.maxFiles, MAX_LOG_FILES);
  positiveInt('log buffer size', log.bufferSize, 1 << 30);
  const restart = input.restart ?? 'no';
  if (!parseRestartPolicy(restart)) throw invalidArgument(`--restart ${JSON.stringify(restart)}: want ${RESTART_POLICIES}`);
  // docker refuses the pair too: a plugin removed at its exit is not there to restart.
  if (input.autoRemove && restart !== 'no') throw invalidArgument(`--rm and --restart ${restart} cannot be combined: a plugin removed at exit cannot be restarted`);
  const out: PluginSettings = { autoRemove: input.autoRemove ?? false, restart, runtimeBinary: input.runtimeBinary ?? defaultBinary, log };
  if (input.bundle) {
    const t = input.bundle.readyTimeoutMs;
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > MAX_READY_TIMEOUT_MS) {
      throw invalidArgument(`--ready-timeout ${String(t / 1000)}: want seconds above 0, at most ${MAX_READY_TIMEOUT_MS / 1000}`);
    }
    out.bundle = { ...input.bundle };
  }
  if (input.image) out.image = { ...input.image };
  let health: HealthSettings | undefined;
  try {
    health = healthSettings(input.health, Boolean(input.bundle?.socket));
  } catch (err) {
    throw invalidArgument((err as Error).message);
  }
  if (health) out.health = health;
  if (hasResources(input.resources)) {
    const problem = resourcesProblem(input.resources);
    if (problem) throw invalidArgument(problem);
    out.resources = { ...input.resources };
  }
  return out;
}

export function settingsToLabels(s: PluginSettings): Record<string, string> {
  const labels: Record<string, string> = {
    [LABEL.managed]: '1',
    [LABEL.logMode]: s.log.mode,
    [LABEL.logMaxSize]: String(s.log.maxSize),
    [LABEL.logMaxFiles]: String(s.log.maxFiles),
    [LABEL.logBufferSize]: String(s.log.bufferSize),
  };
  if (s.autoRemove) labels[LABEL.autoRemove] = '1';
  if (s.restart !== 'no') labels[LABEL.restart] = s.restart;
  // Kept so that a restart policy, or a plugind started with another default, runs it on the same runtime.
  if (s.runtimeBinary) labels[LABEL.runtimeBinary] = s.runtimeBinary;
  if (s.resources) for (const [k, v] of Object.entries(resourcesToLabels(s.resources))) if (v) labels[k] = v;
  if (s.health) labels[LABEL.health] = JSON.stringify(s.health);
  // A restart policy, a restore and inspect know a Docker plugin from these alone.
  if (s.bundle) {
    labels[LABEL.bundleSocket] = s.bundle.socket;
    labels[LABEL.bundleTypes] = s.bundle.types.join(',');
    labels[LABEL.bundleReadyTimeout] = String(Math.round(s.bundle.readyTimeoutMs));
    if (s.bundle.propagatedMount) labels[LABEL.bundlePropagatedMount] = s.bundle.propagatedMount;
    if (s.bundle.privileges.length > 0) labels[LABEL.bundlePrivileges] = JSON.stringify(s.bundle.privileges);
  }
  return labels;
}

/** The limits' labels; an empty value removes one (see Containers.setLabels). */
export function resourcesToLabels(r: Resources): Record<string, string> {
  return {
    [LABEL.memory]: r.memoryBytes === undefined ? '' : String(r.memoryBytes),
    [LABEL.cpus]: r.cpus === undefined ? '' : String(r.cpus),
    [LABEL.pidsLimit]: r.pidsLimit === undefined ? '' : String(r.pidsLimit),
  };
}

function resourcesFromLabels(labels: Record<string, string>): Resources | undefined {
  const r: Resources = {};
  const num = (key: string): number | undefined => {
    const v = labels[key];
    const n = Number(v);
    return v && Number.isFinite(n) ? n : undefined;
  };
  const mem = num(LABEL.memory);
  const cpus = num(LABEL.cpus);
  const pids = num(LABEL.pidsLimit);
  if (mem !== undefined) r.memoryBytes = mem;
  if (cpus !== undefined) r.cpus = cpus;
  if (pids !== undefined) r.pidsLimit = pids;
  return hasResources(r) ? r : undefined;
}

function healthFromLabels(labels: Record<string, string>): HealthSettings | undefined {
  const text = labels[LABEL.health];
  if (!text) return undefined;
  try {
    const h = JSON.parse(text) as Partial<HealthSettings>;
    const ok = typeof h.cmd === 'string' && [h.intervalMs, h.timeoutMs, h.retries, h.startPeriodMs].every((n) => typeof n === 'number' && Number.isFinite(n) && n >= 0);
    return ok && (h.intervalMs as number) > 0 ? (h as HealthSettings) : undefined;
  } catch {
    /* a label that does not parse: no check */
    return undefined;
  }
}

function bundleFromLabels(labels: Record<string, string>): BundleSettings | undefined {
  const socket = labels[LABEL.bundleSocket];
  if (!socket) return undefined;
  const timeout = Number(labels[LABEL.bundleReadyTimeout]);
  let privileges: PluginPrivilege[] = [];
  try {
    const parsed: unknown = JSON.parse(labels[LABEL.bundlePrivileges] ?? '[]');
    if (Array.isArray(parsed)) privileges = parsed as PluginPrivilege[];
  } catch {
    /* a label that does not parse shows no privileges */
  }
  return {
    socket,
    types: (labels[LABEL.bundleTypes] ?? '').split(',').filter(Boolean),
    propagatedMount: labels[LABEL.bundlePropagatedMount] ?? '',
    readyTimeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : DEFAULT_READY_TIMEOUT_MS,
    privileges,
  };
}

/**
 * Reads settings back from a container record: its labels (one that does not
 * parse falls back to the default) and, for a plugin run from an image, the
 * record's own image and snapshotter fields.
 */
export function settingsOf(container: Pick<Container, 'labels' | 'image' | 'snapshotter'>): PluginSettings {
  const { labels, image: ref, snapshotter } = container;
  const num = (key: string, def: number): number => {
    const n = Number(labels[key]);
    return Number.isInteger(n) && n > 0 ? n : def;
  };
  const mode = labels[LABEL.logMode] === 'non-blocking' ? 'non-blocking' : 'blocking';
  const restart = labels[LABEL.restart] ?? 'no';
  const bundle = bundleFromLabels(labels);
  const resources = resourcesFromLabels(labels);
  const health = healthFromLabels(labels);
  return {
    ...(bundle ? { bundle } : {}),
    ...(health ? { health } : {}),
    ...(resources ? { resources } : {}),
    ...(ref && snapshotter ? { image: { ref, snapshotter } } : {}),
    autoRemove: labels[LABEL.autoRemove] === '1',
    restart: parseRestartPolicy(restart) ? restart : 'no',
    runtimeBinary: labels[LABEL.runtimeBinary] ?? '',
    log: {
      mode,
      maxSize: num(LABEL.logMaxSize, DEFAULT_LOG.maxSize),
      maxFiles: num(LABEL.logMaxFiles, DEFAULT_LOG.maxFiles),
      bufferSize: num(LABEL.logBufferSize, DEFAULT_LOG.bufferSize),
    },
  };
}

export interface RecordedExit {
  pid: number;
  exitStatus: number;
  exitedAt: Date;
  /** The kernel's OOM killer ended it (a /tasks/oom event for its task). */
  oomKilled?: boolean;
}

/** The exit's labels; an empty value removes the label (see Containers.setLabels). */
export function exitToLabels(e: RecordedExit, stoppedByUser: boolean): Record<string, string> {
  return {
    [LABEL.exitStatus]: String(e.exitStatus),
    [LABEL.exitedAt]: e.exitedAt.toISOString(),
    [LABEL.exitPid]: String(e.pid),
    [LABEL.exitOomKilled]: e.oomKilled ? '1' : '',
    [LABEL.stoppedByUser]: stoppedByUser ? '1' : '',
  };
}

/** What a new run by the restart policy records: no exit yet, its count. */
export function restartToLabels(restartCount: number): Record<string, string> {
  return {
    [LABEL.exitStatus]: '',
    [LABEL.exitedAt]: '',
    [LABEL.exitPid]: '',
    [LABEL.exitOomKilled]: '',
    [LABEL.stoppedByUser]: '',
    [LABEL.restartCount]: String(restartCount),
  };
}

/** The restart count and user stop a container's labels record. */
export function runRecordOf(labels: Record<string, string>): { restartCount: number; stoppedByUser: boolean } {
  const n = Number(labels[LABEL.restartCount] ?? 0);
  return { restartCount: Number.isInteger(n) && n > 0 ? n : 0, stoppedByUser: labels[LABEL.stoppedByUser] === '1' };
}

export function exitFromLabels(labels: Record<string, string>): RecordedExit | undefined {
  const status = labels[LABEL.exitStatus];
  if (status === undefined) return undefined;
  const at = new Date(labels[LABEL.exitedAt] ?? '');
  const e: RecordedExit = {
    pid: Number(labels[LABEL.exitPid] ?? 0) || 0,
    exitStatus: Number(status) || 0,
    exitedAt: Number.isNaN(at.getTime()) ? new Date(0) : at,
  };
  if (labels[LABEL.exitOomKilled] === '1') e.oomKilled = true;
  return e;
}
