// plugind_event_lag_seconds: every exit event containerd delivers for a
// plugin is observed once, as it reaches the main thread, whichever path
// (the event, or a stop's Wait) handles the exit first: the lag is
// containerd's timestamp to plugind having it.
import type { Histogram } from 'prom-client';

/** Ids remembered; only a repeat soon after matters (ids of `run --rm` plugins are never forgotten otherwise). */
const SEEN_MAX = 4096;

export class ExitLag {
  readonly #histogram: Histogram;
  /** The pid of the last exit event observed per id: containerd may deliver one twice. */
  readonly #seen = new Map<string, number>();

  constructor(histogram: Histogram) {
    this.#histogram = histogram;
  }

  observe(id: string, pid: number, timestampMs: number): void {
    if (this.#seen.get(id) === pid) return;
    if (this.#seen.size >= SEEN_MAX) this.#seen.delete(this.#seen.keys().next().value as string);
    this.#seen.delete(id);
    this.#seen.set(id, pid);
    this.#histogram.observe(Math.max(0, performance.timeOrigin + performance.now() - timestampMs) / 1000);
  }

  /** Drops an id (its plugin removed). */
  forget(id: string): void {
    this.#seen.delete(id);
  }
}
