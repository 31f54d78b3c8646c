// A shard worker's metrics: what only the worker sees (stdio bytes, its
// plugins by state), in its own prom-client Registry that the main thread
// reads with getMetricsAsJSON() and merges. Latencies and exits are counted
// on the main thread, from timestamps the worker sends, so they survive a
// worker restart.
import { Counter, Gauge, Registry } from 'prom-client';
import type { ErrnoClass, PluginStatus, StreamName } from '../src/executor/index.js';

const STATES = ['created', 'running', 'stopped', 'paused'] as const;

export class ShardMetrics {
  readonly registry = new Registry();
  readonly stdioBytes: Counter<'stream' | 'shard'>;
  readonly stdioDropped: Counter<'stream' | 'shard'>;
  readonly logWriteErrors: Counter<'shard' | 'errno'>;
  readonly #shard: string;

  constructor(shard: number, plugins: () => PluginStatus[]) {
    this.#shard = String(shard);
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
