// Health checks, as docker's: every interval a command in the container
// (/bin/sh -c, through exec) or, for a Docker plugin, a dial of its socket.
// A success makes the plugin healthy; `retries` failures in a row (those in
// the start period aside) make it unhealthy, and it is then killed, as a
// kubelet liveness probe does: its restart policy decides what comes next.
// One timer chain per running task; a check's result is dropped if the task
// it was made for has gone meanwhile.
import { join } from 'node:path';
import {
  HEALTH_LOG_SIZE,
  MAX_HEALTH_OUTPUT,
  type HealthResult,
  type HealthSettings,
  type HealthState,
} from '../common/health.js';
import { formatDuration } from '../common/duration.js';
import { SIGKILL, type ExecutorContext } from './context.js';
import { execInPlugin } from './exec.js';
import type { Plugin } from './plugin.js';
import { dialUnix } from './ready.js';
import { signalPlugin } from './stop.js';

export interface HealthChecksOptions {
  /** Where exec'd checks get their FIFOs. */
  execDir: string;
  /** Told when a plugin is killed for failing its checks. */
  onKill?: (id: string) => void;
}

interface Watch {
  plugin: Plugin;
  pid: number;
  timer: NodeJS.Timeout | undefined;
  abort: AbortController;
}

export class HealthChecks {
  readonly #ctx: ExecutorContext;
  readonly #o: HealthChecksOptions;
  readonly #watches = new Map<string, Watch>();
  #closed = false;

  constructor(ctx: ExecutorContext, options: HealthChecksOptions) {
    this.#ctx = ctx;
    this.#o = options;
  }

  /** Starts checking a plugin's current task (status: starting), unless it has no check or is checked already. */
  watch(p: Plugin): void {
    const check = p.settings.health;
    if (this.#closed || !check || p.state !== 'running') return;
    const w = this.#watches.get(p.id);
    if (w && w.plugin === p && w.pid === p.pid) return;
    if (w) this.#drop(p.id);
    p.health = { status: 'starting', failingStreak: 0, log: [] };
    const watch: Watch = { plugin: p, pid: p.pid, timer: undefined, abort: new AbortController() };
    this.#watches.set(p.id, watch);
    this.#schedule(watch, check, performance.now());
  }

  /** Stops checking the id (removed). */
  forget(id: string): void {
    this.#drop(id);
  }

  close(): void {
    this.#closed = true;
    for (const id of [...this.#watches.keys()]) this.#drop(id);
  }

  #drop(id: string): void {
    const w = this.#watches.get(id);
    if (!w) return;
    clearTimeout(w.timer);
    w.abort.abort();
    this.#watches.delete(id);
  }

  /** Whether the watch still stands for the task it was made for. */
  #current(w: Watch): boolean {
    return this.#watches.get(w.plugin.id) === w && w.plugin.state === 'running' && w.plugin.pid === w.pid && this.#ctx.plugins.get(w.plugin.id) === w.plugin;
  }

  #schedule(w: Watch, check: HealthSettings, startedAt: number): void {
    w.timer = setTimeout(() => void this.#tick(w, check, startedAt), check.intervalMs);
    w.timer.unref();
  }

  async #tick(w: Watch, check: HealthSettings, startedAt: number): Promise<void> {
    if (!this.#current(w)) return this.#dropIf(w);
    const result = await this.#probe(w, check);
    if (!this.#current(w)) return this.#dropIf(w);
    const h = w.plugin.health as HealthState;
    h.log = [...h.log, result].slice(-HEALTH_LOG_SIZE);
    if (result.exitCode === 0) {
      h.status = 'healthy';
      h.failingStreak = 0;
    } else if (h.status !== 'starting' || performance.now() - startedAt >= check.startPeriodMs) {
      h.failingStreak += 1;
      if (h.failingStreak >= check.retries) {
        h.status = 'unhealthy';
        await this.#kill(w, check);
        return this.#dropIf(w);
      }
    }
    this.#schedule(w, check, startedAt);
  }

  #dropIf(w: Watch): void {
    if (this.#watches.get(w.plugin.id) === w) this.#drop(w.plugin.id);
  }

  async #kill(w: Watch, check: HealthSettings): Promise<void> {
    const { plugin: p } = w;
    const last = p.health?.log.at(-1);
    this.#ctx.log.warn(
      { plugin: p.id, failingStreak: p.health?.failingStreak, lastOutput: last?.output.slice(0, 200) },
      `plugin unhealthy: ${check.retries} failed health checks in a row; killed, its restart policy decides what next`,
    );
    this.#o.onKill?.(p.id);
    try {
      await signalPlugin(this.#ctx, p, SIGKILL, true);
    } catch (err) {
      this.#ctx.log.warn({ plugin: p.id, err }, 'unhealthy plugin not killed');
    }
  }

  async #probe(w: Watch, check: HealthSettings): Promise<HealthResult> {
    const start = new Date();
    const done = (exitCode: number, output: string): HealthResult => ({ start, end: new Date(), exitCode, output: output.slice(0, MAX_HEALTH_OUTPUT) });
    const socket = w.plugin.settings.bundle?.socket;
    if (!check.cmd && socket) {
      const path = join(this.#ctx.runRoot, w.plugin.id, socket);
      const err = await dialUnix(path, check.timeoutMs);
      return err ? done(1, `dial ${path}: ${err.code ?? err.message}`) : done(0, '');
    }
    const timeout = AbortSignal.timeout(check.timeoutMs);
    const signal = AbortSignal.any([timeout, w.abort.signal]);
    let output = '';
    const write = (_stream: string, data: Buffer): void => {
      if (output.length < MAX_HEALTH_OUTPUT) output += data.toString('utf8', 0, MAX_HEALTH_OUTPUT - output.length);
    };
    try {
      const status = await execInPlugin(this.#ctx.client, this.#o.execDir, { id: w.plugin.id, args: ['/bin/sh', '-c', check.cmd], env: [] }, { write, signal }, this.#ctx.log);
      if (timeout.aborted) return done(-1, `health check exceeded its timeout (${formatDuration(check.timeoutMs)})`);
      // docker's: 0 healthy, anything else unhealthy (shown as 1).
      return done(status === 0 ? 0 : 1, output);
    } catch (err) {
      if (timeout.aborted) return done(-1, `health check exceeded its timeout (${formatDuration(check.timeoutMs)})`);
      return done(-1, `health check did not run: ${(err as Error).message}`);
    }
  }
}
