// The record the executor keeps of one plugin, and the status it shows of it.
// The record is memory only: containerd (labels) is the store, restore rebuilds it.
import type { PluginSettings } from './settings.js';
import type { PluginIO } from './stdio.js';

export type PluginState = 'created' | 'running' | 'stopped' | 'paused';

export interface PluginExit {
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: Date;
  /** containerd's event timestamp (ms), when an event reported the exit. */
  eventTimestampMs?: number;
}

/** An exit as learnt, before it is matched to a plugin. */
export type ExitSeen = Omit<PluginExit, 'id' | 'eventTimestampMs'>;

export interface PluginStatus {
  id: string;
  state: PluginState;
  pid: number;
  createdAt: Date;
  exitStatus?: number;
  exitedAt?: Date;
  settings: PluginSettings;
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
  /** Resolves when the current task's exit has been told and reaped. */
  exited: Promise<PluginExit>;
  resolveExited: (e: PluginExit) => void;
}

export function newPlugin(id: string, fields: Pick<Plugin, 'state' | 'pid' | 'createdAt' | 'settings' | 'io'>): Plugin {
  let resolveExited!: (e: PluginExit) => void;
  const exited = new Promise<PluginExit>((r) => (resolveExited = r));
  return { id, ...fields, exit: undefined, reaped: false, exited, resolveExited };
}

export function toStatus(p: Plugin): PluginStatus {
  const s: PluginStatus = { id: p.id, state: p.state, pid: p.pid, createdAt: p.createdAt, settings: p.settings };
  if (p.exit) {
    s.exitStatus = p.exit.exitStatus;
    s.exitedAt = p.exit.exitedAt;
  }
  return s;
}
