// What the server answers with: plugind's records as plugind.v1 messages
// (plain objects with the proto's field names, Timestamps for dates).
import type { HealthSettings } from '../common/health.js';
import type { PluginInfo } from '../coordinator/index.js';
import type { PluginExit } from '../executor/index.js';
import type { ImageSummary } from '../images/index.js';
import { toTimestamp, type Timestamp } from './wire.js';

export function ts(d: Date | undefined): Timestamp | null {
  return d ? toTimestamp(d.getTime()) : null;
}

export function pluginMessage(p: PluginInfo): Record<string, unknown> {
  return {
    id: p.id,
    state: p.state,
    pid: p.pid,
    shard: p.shard,
    createdAt: ts(p.createdAt),
    exited: p.exitStatus !== undefined,
    exitStatus: p.exitStatus ?? 0,
    exitedAt: ts(p.exitedAt),
    restart: p.settings.restart,
    autoRemove: p.settings.autoRemove,
    runtimeBinary: p.settings.runtimeBinary,
    image: p.settings.image?.ref ?? '',
    restartCount: p.restartCount,
    nextRestartAt: ts(p.nextRestartAt),
    oomKilled: p.oomKilled,
    resources: p.settings.resources ?? null,
    logPath: p.logPath,
    health: p.health
      ? { status: p.health.status, failingStreak: p.health.failingStreak, log: p.health.log.map((r) => ({ start: ts(r.start), end: ts(r.end), exitCode: r.exitCode, output: r.output })) }
      : null,
    healthCheck: p.settings.health ? healthCheckMessage(p.settings.health) : null,
    ...(p.bundle
      ? {
          socket: p.bundle.socket,
          interface: p.bundle.interface,
          propagatedMount: p.bundle.propagatedMount,
          ready: p.bundle.ready,
          privileges: p.bundle.privileges,
        }
      : {}),
  };
}

function healthCheckMessage(h: HealthSettings): Record<string, unknown> {
  return { cmd: h.cmd, intervalSeconds: h.intervalMs / 1000, timeoutSeconds: h.timeoutMs / 1000, retries: h.retries, startPeriodSeconds: h.startPeriodMs / 1000 };
}

export function exitMessage(e: PluginExit): Record<string, unknown> {
  const m: Record<string, unknown> = { id: e.id, pid: e.pid, exitStatus: e.exitStatus, exitedAt: ts(e.exitedAt) };
  if (e.eventTimestampMs !== undefined) m.eventTimestamp = toTimestamp(e.eventTimestampMs);
  if (e.oomKilled) m.oomKilled = true;
  return m;
}

export function imageMessage(i: ImageSummary): Record<string, unknown> {
  return { name: i.name, digest: i.digest, mediaType: i.mediaType, size: i.size, createdAt: ts(i.createdAt), plugins: i.plugins };
}
