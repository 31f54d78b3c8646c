// run's health-check flags, docker's names: --health-cmd and its timings,
// --no-healthcheck.
import { InvalidArgumentError, type Command } from 'commander';
import type { HealthCheck } from '../api/client.js';
import { parseDuration } from '../common/duration.js';
import { MAX_HEALTH_RETRIES } from '../common/health.js';

/** Seconds from `30`, `30s`, `500ms`, `1m30s`; the range is plugind's to check, and it names the flag. */
function duration(v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined) throw new InvalidArgumentError('want a duration: seconds (30, 0.5) or 500ms, 30s, 1m30s');
  return ms / 1000;
}

function retries(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > MAX_HEALTH_RETRIES) throw new InvalidArgumentError(`want a whole number from 1 to ${MAX_HEALTH_RETRIES}`);
  return n;
}

export function addHealthOptions(cmd: Command): Command {
  return cmd
    .option('--health-cmd <command>', 'health check: run with /bin/sh -c in the container; exit 0 is healthy')
    .option('--health-interval <duration>', 'time between checks (default 30s)', duration)
    .option('--health-timeout <duration>', 'a check that runs longer fails (default 30s)', duration)
    .option('--health-retries <n>', 'failed checks in a row that make it unhealthy; it is then killed and its --restart policy decides (default 3)', retries)
    .option('--health-start-period <duration>', 'failures this soon after a start do not count (default 0s)', duration)
    .option('--no-healthcheck', "no health check, not even a Docker plugin's socket dial")
    .addHelpText(
      'after',
      `
Health checks: a Docker plugin (--bundle, --image) is checked by dialling its socket unless --health-cmd
is given or --no-healthcheck; other plugins only with --health-cmd. inspect --json has "health"
(status starting|healthy|unhealthy, failingStreak, the last 5 checks); ls shows "running (healthy)".`,
    );
}

/** The health check among run's flags; none when no flag was given. */
export function healthFromFlags(o: Record<string, unknown>): { healthCheck?: HealthCheck } {
  const h: HealthCheck = {};
  if (typeof o.healthCmd === 'string') h.cmd = o.healthCmd;
  if (o.healthInterval !== undefined) h.intervalSeconds = o.healthInterval as number;
  if (o.healthTimeout !== undefined) h.timeoutSeconds = o.healthTimeout as number;
  if (o.healthRetries !== undefined) h.retries = o.healthRetries as number;
  if (o.healthStartPeriod !== undefined) h.startPeriodSeconds = o.healthStartPeriod as number;
  // commander's --no-healthcheck sets healthcheck false; it is true otherwise.
  if (o.healthcheck === false) h.disabled = true;
  return Object.keys(h).length > 0 ? { healthCheck: h } : {};
}
