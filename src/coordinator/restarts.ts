// What a plugin's restart policy does at its exit, with all the state that
// takes: the policy of each plugin, the restarts it has had by it, its
// backoff, the stops a user asked for, and the restart pending. Docker's
// restart manager is the model: 100 ms doubling up to a minute, back to
// 100 ms after a run of 10 s; `on-failure:N` counts restarts since the
// user's last run; a user stop cancels what is pending and ends the
// policy's say until the next run, except that `always` runs a plugin found
// stopped when plugind starts.
import { parseRestartPolicy, type RestartPolicy } from '../common/restart-policy.js';

export interface RestartBackoff {
  /** The first restart's delay; each next one doubles it. Default 100 ms. */
  initialMs?: number;
  /** Default 60 s. */
  maxMs?: number;
  /** A run at least this long starts the backoff afresh. Default 10 s. */
  resetAfterMs?: number;
}

/** After an exit: leave the plugin stopped, or run it again after delayMs as its count-th restart. */
export type RestartDecision =
  | { restart: false; exhausted: boolean; count: number }
  | { restart: true; count: number; delayMs: number };

/** What a plugin's record says (labels), for a plugin this thread has not tracked yet. */
export interface RestartRecord {
  restartCount: number;
  stoppedByUser: boolean;
}

interface Track {
  policy: RestartPolicy;
  count: number;
  /** The last backoff delay; 0 before the first restart (or after a long run). */
  delayMs: number;
  /** When the current run started (ms since the epoch); 0 unknown. */
  startedAtMs: number;
  stoppedByUser: boolean;
  pending?: { atMs: number; timer: NodeJS.Timeout };
}

export class Restarts {
  readonly #tracks = new Map<string, Track>();
  readonly #initialMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;

  constructor(backoff: RestartBackoff = {}) {
    this.#initialMs = backoff.initialMs ?? 100;
    this.#maxMs = backoff.maxMs ?? 60_000;
    this.#resetAfterMs = backoff.resetAfterMs ?? 10_000;
  }

  /** The plugin runs by the user's hand: this policy from now on, counted afresh. */
  ran(id: string, policy: string, startedAtMs = Date.now()): void {
    this.forget(id);
    this.#tracks.set(id, { policy: parseRestartPolicy(policy) ?? { name: 'no' }, count: 0, delayMs: 0, startedAtMs, stoppedByUser: false });
  }

  /**
   * A plugin a shard lists: its policy, and (when this thread has no track
   * of it yet, after plugind started) the count and user stop its record keeps.
   */
  learned(id: string, policy: string, record: RestartRecord): void {
    const p = parseRestartPolicy(policy) ?? { name: 'no' };
    const t = this.#tracks.get(id);
    if (t) t.policy = p;
    else this.#tracks.set(id, { policy: p, count: record.restartCount, delayMs: 0, startedAtMs: 0, stoppedByUser: record.stoppedByUser });
  }

  /** A run by the policy started. */
  started(id: string, atMs: number): void {
    const t = this.#tracks.get(id);
    if (t) t.startedAtMs = atMs;
  }

  /** A user stop or kill: a pending restart is cancelled, and none follows until the plugin is run again. */
  stoppedByUser(id: string): void {
    const t = this.#tracks.get(id);
    if (!t) return;
    t.stoppedByUser = true;
    this.#cancel(t);
  }

  forget(id: string): void {
    const t = this.#tracks.get(id);
    if (t) this.#cancel(t);
    this.#tracks.delete(id);
  }

  /** Cancels every pending restart (plugind closing). */
  close(): void {
    for (const t of this.#tracks.values()) this.#cancel(t);
  }

  /**
   * Whether an exit (or, with atStart, a plugin found stopped when plugind
   * starts) is restarted, and after how long. A restart decided is counted.
   */
  decide(id: string, exitStatus: number, exitedAtMs: number, atStart = false): RestartDecision {
    const t = this.#tracks.get(id);
    if (!t || t.pending) return { restart: false, exhausted: false, count: t?.count ?? 0 };
    const { policy } = t;
    const no = { restart: false as const, exhausted: false, count: t.count };
    switch (policy.name) {
      case 'no':
        return no;
      case 'always':
        if (t.stoppedByUser && !atStart) return no;
        break;
      case 'unless-stopped':
        if (t.stoppedByUser) return no;
        break;
      case 'on-failure':
        if (t.stoppedByUser || exitStatus === 0) return no;
        if (t.count >= policy.maxRetries) return { restart: false, exhausted: true, count: t.count };
        break;
    }
    if (t.startedAtMs > 0 && exitedAtMs - t.startedAtMs >= this.#resetAfterMs) t.delayMs = 0;
    t.delayMs = t.delayMs === 0 ? this.#initialMs : Math.min(t.delayMs * 2, this.#maxMs);
    t.count += 1;
    t.stoppedByUser = false;
    return { restart: true, count: t.count, delayMs: t.delayMs };
  }

  /** Runs `restart` after delayMs unless cancelled meanwhile (a user stop, a run, a remove). */
  schedule(id: string, delayMs: number, restart: () => void): void {
    const t = this.#tracks.get(id);
    if (!t) return;
    this.#cancel(t);
    const timer = setTimeout(() => {
      if (this.#tracks.get(id) !== t || t.pending?.timer !== timer) return;
      delete t.pending;
      restart();
    }, delayMs);
    t.pending = { atMs: Date.now() + delayMs, timer };
  }

  /** Restarts by the policy since the user's last run (a pending one is not yet counted). */
  count(id: string): number | undefined {
    const t = this.#tracks.get(id);
    return t && t.count - (t.pending ? 1 : 0);
  }

  /** When the pending restart is due (ms since the epoch), if one is. */
  nextAtMs(id: string): number | undefined {
    return this.#tracks.get(id)?.pending?.atMs;
  }

  /** A cancelled restart never ran: it is not counted. */
  #cancel(t: Track): void {
    if (!t.pending) return;
    clearTimeout(t.pending.timer);
    delete t.pending;
    t.count -= 1;
  }
}
