// A shard worker's metrics: what only the worker sees (stdio bytes, its
// plugins by state), in its own prom-client Registry that the main thread
// reads with getMetricsAsJSON() and merges. Latencies and exits are counted
// on the main thread, from timestamps the worker sends, so they survive a
// worker restart.
import { Counter, Gauge, Registry } from 'prom-client';
import type { PluginStatus, StreamName } from '../src/executor/index.js';

const STATES = ['created', 'running', 'stopped', 'paused', 'unknown'] as const;

export class ShardMetrics {
  readonly registry = new Registry();
  readonly stdioBytes: Counter<'stream' | 'shard'>;
  readonly stdioDropped: Counter<'stream' | 'shard'>;
  readonly #shard: string;

  constructor(shard: number, plugins: () => PluginStatus[]) {
    this.#shard = String(shard);
    const registers = [this.registry];
    this.stdioBytes = new Counter({
      name: 'plugind_stdio_bytes_total',
      help: 'Bytes read from plugin stdout/stderr.',
      labelNames: ['stream', 'shard'],
      registers,
    });
    this.stdioDropped = new Counter({
      name: 'plugind_stdio_dropped_bytes_total',
      help: 'Plugin output dropped in non-blocking log mode.',
      labelNames: ['stream', 'shard'],
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

  bytes(stream: StreamName, n: number): void {
    this.stdioBytes.inc({ stream, shard: this.#shard }, n);
  }

  dropped(stream: StreamName, n: number): void {
    this.stdioDropped.inc({ stream, shard: this.#shard }, n);
  }
}

/** Wall-clock ms with sub-ms precision, comparable across threads. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
