// A shard worker's metrics: what only the worker sees (stdio bytes, its
// plugins by state), in its own prom-client Registry that the main thread
// reads with getMetricsAsJSON() and merges. Latencies and exits are counted
// on the main thread, from timestamps the worker sends, so they survive a
// worker restart.
import { Counter, Gauge, Registry } from 'prom-client';
import type { ErrnoClass, PluginStatus, StreamName } from '../src/executor/index.js';
import type { PluginUsage } from './plugin-usage.js';

const STATES = ['created', 'running', 'stopped', 'paused'] as const;

export class ShardMetrics {
  readonly registry = new Registry();
  readonly stdioBytes: Counter<'stream' | 'shard'>;
  readonly stdioDropped: Counter<'stream' | 'shard'>;
  readonly logWriteErrors: Counter<'shard' | 'errno'>;
  readonly pluginCpu: Counter<'plugin'>;
  readonly pluginMemory: Gauge<'plugin'>;
  readonly pluginMemoryLimit: Gauge<'plugin'>;
  readonly pluginPids: Gauge<'plugin'>;
  readonly usageErrors: Counter;
  readonly unhealthyKills: Counter;
  readonly #shard: string;
  readonly #plugins: () => PluginStatus[];
  #usageFailing = false;

  constructor(shard: number, plugins: () => PluginStatus[]) {
    this.#shard = String(shard);
    this.#plugins = plugins;
    const registers = [this.registry];
    const self = this;
    this.stdioBytes = new Counter({
      name: 'plugind_stdio_bytes_total',
      help: 'Bytes read from plugin stdout/stderr.',
      labelNames: ['stream', 'shard'],
      registers,
      collect() {
        self.#drain(this, self.#pending.bytes);
      },
    });
    this.stdioDropped = new Counter({
      name: 'plugind_stdio_dropped_bytes_total',
      help: 'Plugin output dropped: what overflows the buffer in non-blocking log mode, and what a log file that failed for good could not take.',
      labelNames: ['stream', 'shard'],
      registers,
      collect() {
        self.#drain(this, self.#pending.dropped);
      },
    });
    // Incremented directly: failures come at most one per retry (50 ms to 2 s apart) per stream.
    this.logWriteErrors = new Counter({
      name: 'plugind_log_write_errors_total',
      help: 'Failed attempts to write or rotate a plugin log file, by errno class (a write waiting for disk space is retried every 50 ms up to 2 s).',
      labelNames: ['shard', 'errno'],
      registers,
    });
    // Set at each scrape from one Tasks.Metrics call (see pluginUsage): a removed plugin's series go with it.
    this.pluginCpu = new Counter({ name: 'plugind_plugin_cpu_seconds_total', help: 'CPU time used by a running plugin (all its processes) since its task started.', labelNames: ['plugin'], registers });
    this.pluginMemory = new Gauge({ name: 'plugind_plugin_memory_bytes', help: "A running plugin's working set: memory usage less inactive file cache.", labelNames: ['plugin'], registers });
    this.pluginMemoryLimit = new Gauge({ name: 'plugind_plugin_memory_limit_bytes', help: 'The memory limit of a running plugin that has one (run --memory).', labelNames: ['plugin'], registers });
    this.pluginPids = new Gauge({ name: 'plugind_plugin_pids', help: 'Processes and threads in a running plugin.', labelNames: ['plugin'], registers });
    this.usageErrors = new Counter({ name: 'plugind_plugin_usage_errors_total', help: "Scrapes whose read of plugins' usage from containerd (Tasks.Metrics) failed; the per-plugin series are left out of those.", registers });
    new Gauge({
      name: 'plugind_plugins',
      help: 'Plugins known to plugind, by state.',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
        for (const p of plugins()) counts.set(p.state, (counts.get(p.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'plugind_plugins_unhealthy',
      help: 'Plugins whose health check last found them unhealthy (killed for it, and not yet running again).',
      registers,
      collect() {
        this.set(plugins().filter((p) => p.health?.status === 'unhealthy').length);
      },
    });
    this.unhealthyKills = new Counter({ name: 'plugind_unhealthy_kills_total', help: 'Plugins killed for failing their health check retries times in a row.', registers });
  }

  /**
   * Sets the per-plugin series from a read of the shard's usage (see
   * PluginUsage: fresh, or the last one when containerd is slow to answer),
   * for the plugins running now. A read that fails leaves them out, counted
   * and said in the log once until a read works again.
   */
  async pluginUsage(usage: PluginUsage, log: { warn(o: object, msg: string): void; info(o: object, msg: string): void }): Promise<void> {
    const series = [this.pluginCpu, this.pluginMemory, this.pluginMemoryLimit, this.pluginPids];
    const got = await usage.get();
    // Reset and set with no await between: scrapes that overlap each leave a whole read.
    for (const m of series) m.reset();
    if (!got.ok) {
      if (got.fresh) this.usageErrors.inc();
      if (!this.#usageFailing) log.warn({ err: got.err }, "plugins' usage not read from containerd; per-plugin series left out until it works (plugind_plugin_usage_errors_total)");
      this.#usageFailing = true;
      return;
    }
    if (this.#usageFailing) log.info({}, "plugins' usage read again");
    this.#usageFailing = false;
    // A read older than this scrape may name plugins stopped or removed since.
    const running = new Set(this.#plugins().filter((p) => p.state === 'running').map((p) => p.id));
    for (const u of got.usage) {
      if (!running.has(u.id)) continue;
      const plugin = { plugin: u.id };
      this.pluginCpu.inc(plugin, u.cpuNs / 1e9);
      this.pluginMemory.set(plugin, u.memoryBytes);
      if (u.memoryLimitBytes !== undefined) this.pluginMemoryLimit.set(plugin, u.memoryLimitBytes);
      this.pluginPids.set(plugin, u.pids);
    }
  }

  // Per chunk only a number is added; the counters take it at scrape time.
  readonly #pending = { bytes: { stdout: 0, stderr: 0 }, dropped: { stdout: 0, stderr: 0 } };

  bytes(stream: StreamName, n: number): void {
    this.#pending.bytes[stream] += n;
  }

  dropped(stream: StreamName, n: number): void {
    this.#pending.dropped[stream] += n;
  }

  logWriteError(errno: ErrnoClass): void {
    this.logWriteErrors.inc({ shard: this.#shard, errno });
  }

  #drain(counter: Counter<'stream' | 'shard'>, pending: Record<StreamName, number>): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      if (pending[stream] > 0) counter.inc({ stream, shard: this.#shard }, pending[stream]);
      pending[stream] = 0;
    }
  }
}

/** Wall-clock ms with sub-ms precision, comparable across threads. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
