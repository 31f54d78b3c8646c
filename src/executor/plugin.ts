// The record the executor keeps of one plugin, and the status it shows of it.
// The record is memory only: containerd (labels) is the store, restore rebuilds it.
import { join } from 'node:path';
import type { HealthState } from '../common/health.js';
import type { PluginPrivilege } from './plugin-config.js';
import type { PluginSettings } from './settings.js';
import { LOG_NAME, type PluginIO } from './stdio.js';

export type PluginState = 'created' | 'running' | 'stopped' | 'paused';

export interface PluginExit {
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: Date;
  /** containerd's event timestamp (ms), when an event reported the exit. */
  eventTimestampMs?: number;
  /** The kernel's OOM killer ended it (its memory limit reached). */
  oomKilled?: boolean;
}

/** An exit as learnt, before it is matched to a plugin. */
export type ExitSeen = Omit<PluginExit, 'id' | 'eventTimestampMs' | 'oomKilled'>;

/** What a Docker plugin shows beyond a plain plugin; host paths are absolute. */
export interface BundleStatus {
  /** `<runtime dir>/<Interface.Socket>`. */
  socket: string;
  interface: { socket: string; types: string[] };
  /** The host dir behind PropagatedMount; '' for none. */
  propagatedMount: string;
  /** Its socket accepted a connection since the task started (or since a restore found it running). */
  ready: boolean;
  privileges: PluginPrivilege[];
}

export interface PluginStatus {
  id: string;
  state: PluginState;
  pid: number;
  createdAt: Date;
  exitStatus?: number;
  exitedAt?: Date;
  settings: PluginSettings;
  bundle?: BundleStatus;
  /** Restarts by the policy since the user's last run. */
  restartCount: number;
  /** Its last exit came from a user's stop or kill. */
  stoppedByUser: boolean;
  /** Its last exit was an OOM kill. */
  oomKilled: boolean;
  /** Its health check's findings since its task started; unset without a check. */
  health?: HealthState;
  /** Its log file (CRI format), absolute; rotated files beside it as .1, .2, … */
  logPath: string;
}

/** Where Docker plugins' runtime and propagated dirs live (see paths.ts). */
export interface BundleRoots {
  runRoot: string;
  propagatedRoot: string;
  /** Plugin logs, `<logRoot>/<id>/`. */
  logRoot: string;
}

export interface Plugin {
  id: string;
  state: PluginState;
  pid: number;
  createdAt: Date;
  settings: PluginSettings;
  io: PluginIO | undefined;
  exit: PluginExit | undefined;
  /** Task deleted, output flushed, exit recorded on the container. */
  reaped: boolean;
  /** A Docker plugin's socket accepted a connection during this task's life. */
  ready: boolean;
  /** Restarts by the policy since the user's last run (kept in its labels). */
  restartCount: number;
  /** A user's stop or kill ended (or is ending) the current task. */
  stoppedByUser: boolean;
  /** containerd reported an OOM kill in the current task. */
  oomKilled: boolean;
  /** Health checks of the current (or last) task; unset until checks start. */
  health?: HealthState;
  /** Resolves when the current task's exit has been told and reaped. */
  exited: Promise<PluginExit>;
  resolveExited: (e: PluginExit) => void;
}

export function newPlugin(
  id: string,
  fields: Pick<Plugin, 'state' | 'pid' | 'createdAt' | 'settings' | 'io'> & Partial<Pick<Plugin, 'restartCount' | 'stoppedByUser'>>,
): Plugin {
  let resolveExited!: (e: PluginExit) => void;
  const exited = new Promise<PluginExit>((r) => (resolveExited = r));
  return { restartCount: 0, stoppedByUser: false, ...fields, oomKilled: false, id, exit: undefined, reaped: false, ready: false, exited, resolveExited };
}

export function toStatus(p: Plugin, roots: BundleRoots): PluginStatus {
  const s: PluginStatus = {
    id: p.id,
    state: p.state,
    pid: p.pid,
    createdAt: p.createdAt,
    settings: p.settings,
    restartCount: p.restartCount,
    stoppedByUser: p.stoppedByUser,
    oomKilled: p.exit?.oomKilled === true,
    logPath: join(roots.logRoot, p.id, `${LOG_NAME}.log`),
  };
  if (p.health) s.health = { ...p.health, log: [...p.health.log] };
  const b = p.settings.bundle;
  if (b) {
    s.bundle = {
      socket: join(roots.runRoot, p.id, b.socket),
      interface: { socket: b.socket, types: b.types },
      propagatedMount: b.propagatedMount ? join(roots.propagatedRoot, p.id) : '',
      ready: p.ready && p.state !== 'stopped',
      privileges: b.privileges,
    };
  }
  if (p.exit) {
    s.exitStatus = p.exit.exitStatus;
    s.exitedAt = p.exit.exitedAt;
  }
  return s;
}
