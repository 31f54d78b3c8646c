// Plugins' usage for a scrape: each scrape asks containerd afresh (one
// Tasks.Metrics call for the shard), but waits for the answer only so long.
// containerd asks every task's shim in turn and each shim reads all of its
// cgroup's files, so for a thousand plugins the answer takes about a second
// on two cores; a scrape that would wait longer gets the last answer
// instead, and the one under way lands for the next scrape.
import { setTimeout as sleep } from 'node:timers/promises';
import type { TaskMetrics } from '../src/containerd/index.js';

/** How long a scrape waits for a fresh read when it has an older one to give. */
export const USAGE_WAIT_MS = 500;

type Read = { ok: true; usage: TaskMetrics[] } | { ok: false; err: unknown };

export class PluginUsage {
  readonly #read: () => Promise<TaskMetrics[]>;
  readonly #waitMs: number;
  #last: Read | undefined;
  #inflight: Promise<Read> | undefined;

  constructor(read: () => Promise<TaskMetrics[]>, waitMs = USAGE_WAIT_MS) {
    this.#read = read;
    this.#waitMs = waitMs;
  }

  /**
   * The freshest read there is after starting one (or joining the one under
   * way) and waiting for it up to waitMs; the first read is waited for
   * whole (containerd's call deadline bounds it). fresh: this read is the
   * one this call started or joined, so a failure is news.
   */
  async get(): Promise<Read & { fresh: boolean }> {
    const inflight = (this.#inflight ??= this.#read().then(
      (usage): Read => ({ ok: true, usage }),
      (err: unknown): Read => ({ ok: false, err }),
    ));
    void inflight.then((r) => {
      this.#last = r;
      if (this.#inflight === inflight) this.#inflight = undefined;
    });
    const got = this.#last === undefined ? await inflight : await Promise.race([inflight, sleep(this.#waitMs, undefined, { ref: false })]);
    if (got) return { ...got, fresh: true };
    return { ...(this.#last as Read), fresh: false };
  }
}
