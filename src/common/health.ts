// A plugin's health check as run sets it, with docker's flags and defaults,
// checked in one place: the CLI, the API and the executor share it.
import { formatDuration } from './duration.js';

export interface HealthSettings {
  /**
   * Run with /bin/sh -c inside the container; exit 0 is healthy. Empty: a
   * Docker plugin's socket is dialled instead.
   */
  cmd: string;
  intervalMs: number;
  timeoutMs: number;
  /** Failed checks in a row that make it unhealthy (and get it killed). */
  retries: number;
  /** Failures this soon after its start do not count; a success still makes it healthy. */
  startPeriodMs: number;
}

/** What run was given; unset fields take docker's defaults. */
export interface HealthInput {
  cmd?: string;
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
  /** --no-healthcheck: no check, not even a Docker plugin's socket. */
  disabled?: boolean;
}

// docker's defaults.
export const DEFAULT_HEALTH = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 } as const;
/** A day: longer is a typo. */
export const MAX_HEALTH_DURATION_MS = 86_400_000;
export const MAX_HEALTH_RETRIES = 1000;
/** A container label holds it, with the rest of its settings. */
export const MAX_HEALTH_CMD_BYTES = 2048;
/** Output kept per check, as docker keeps. */
export const MAX_HEALTH_OUTPUT = 4096;
/** Checks kept in its log. */
export const HEALTH_LOG_SIZE = 5;

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthResult {
  start: Date;
  end: Date;
  /** 0 healthy, 1 unhealthy; -1 when the check could not run or ran out of time. */
  exitCode: number;
  output: string;
}

export interface HealthState {
  status: HealthStatus;
  failingStreak: number;
  /** The last HEALTH_LOG_SIZE checks, oldest first. */
  log: HealthResult[];
}

function durationProblem(flag: string, ms: number | undefined, min: number): string | undefined {
  if (ms === undefined) return undefined;
  if (!Number.isFinite(ms) || ms < min || ms > MAX_HEALTH_DURATION_MS) {
    const at = ms === 0 || !Number.isFinite(ms) ? String(ms) : formatDuration(ms);
    return `${flag} ${at}: want a duration ${min === 0 ? 'of 0 or more' : 'above 0'}, at most 24h`;
  }
  return undefined;
}

/**
 * The check a plugin gets, or undefined for none; throws (a message naming
 * the flag) for bad input. A Docker plugin with a socket is checked by
 * dialling it unless disabled or given a command.
 */
export function healthSettings(input: HealthInput | undefined, hasSocket: boolean): HealthSettings | undefined {
  const h = input ?? {};
  const timed = h.intervalMs !== undefined || h.timeoutMs !== undefined || h.retries !== undefined || h.startPeriodMs !== undefined;
  if (h.disabled) {
    if (h.cmd || timed) throw new RangeError('--no-healthcheck cannot be combined with --health-cmd or the other --health-* flags');
    return undefined;
  }
  const problem =
    durationProblem('--health-interval', h.intervalMs, 1) ??
    durationProblem('--health-timeout', h.timeoutMs, 1) ??
    durationProblem('--health-start-period', h.startPeriodMs, 0);
  if (problem) throw new RangeError(problem);
  if (h.retries !== undefined && (!Number.isInteger(h.retries) || h.retries < 1 || h.retries > MAX_HEALTH_RETRIES)) {
    throw new RangeError(`--health-retries ${h.retries}: want a whole number from 1 to ${MAX_HEALTH_RETRIES}`);
  }
  const cmd = h.cmd ?? '';
  if (cmd.trim() === '' && h.cmd !== undefined && h.cmd !== '') throw new RangeError('--health-cmd: the command is blank');
  if (Buffer.byteLength(cmd) > MAX_HEALTH_CMD_BYTES) throw new RangeError(`--health-cmd: ${Buffer.byteLength(cmd)} bytes, at most ${MAX_HEALTH_CMD_BYTES}`);
  if (!cmd && !hasSocket) {
    if (timed) throw new RangeError('--health-interval, --health-timeout, --health-retries and --health-start-period need --health-cmd (only a Docker plugin is checked by its socket)');
    return undefined;
  }
  return {
    cmd,
    intervalMs: h.intervalMs ?? DEFAULT_HEALTH.intervalMs,
    timeoutMs: h.timeoutMs ?? DEFAULT_HEALTH.timeoutMs,
    retries: h.retries ?? DEFAULT_HEALTH.retries,
    startPeriodMs: h.startPeriodMs ?? DEFAULT_HEALTH.startPeriodMs,
  };
}
