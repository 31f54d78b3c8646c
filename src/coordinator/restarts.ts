// What a plugin's restart policy does at its exit, with all the state that
// takes: the policy of each plugin, the runs it has had by its policy, and
// the stops a user asked for (which end the policy's say until the next run).
import { parseRestartPolicy, type RestartPolicy } from '../common/restart-policy.js';

export interface RestartBackoff {
  /** The first restart's delay; each next one doubles it. Default 200 ms. */
  initialMs?: number;
  /** Default 10 s. */
  maxMs?: number;
}

/** After an exit: leave the plugin stopped, or run it again after delayMs as its attempt-th restart. */
export type RestartDecision =
  | { restart: false; exhausted: boolean; attempts: number }
  | { restart: true; attempt: number; delayMs: number };

const NO: RestartPolicy = { name: 'no' };

export class Restarts {
  readonly #policies = new Map<string, RestartPolicy>();
  readonly #attempts = new Map<string, number>();
  readonly #userStopped = new Set<string>();
  readonly #initialMs: number;
  readonly #maxMs: number;

  constructor(backoff: RestartBackoff = {}) {
    this.#initialMs = backoff.initialMs ?? 200;
    this.#maxMs = backoff.maxMs ?? 10_000;
  }

  /** The plugin runs by the user's hand: this policy from now on, counted afresh. */
  ran(id: string, policy: string): void {
    this.forget(id);
    this.restored(id, policy);
  }

  /**
   * A plugin found by a restore: its policy, and whatever count it had here.
   * Only plugins with a policy are kept (`run --rm` ones, which are never
   * removed by hand, have none).
   */
  restored(id: string, policy: string): void {
    const p = parseRestartPolicy(policy) ?? NO;
    if (p.name === 'no') this.forget(id);
    else this.#policies.set(id, p);
  }

  /** A user stop: no restart until the plugin is run again. */
  stoppedByUser(id: string): void {
    if (this.#policies.has(id)) this.#userStopped.add(id);
  }

  forget(id: string): void {
    this.#policies.delete(id);
    this.#attempts.delete(id);
    this.#userStopped.delete(id);
  }

  afterExit(id: string, exitStatus: number): RestartDecision {
    const policy = this.#policies.get(id) ?? NO;
    const done = this.#attempts.get(id) ?? 0;
    if (policy.name === 'no' || exitStatus === 0 || this.#userStopped.has(id)) return { restart: false, exhausted: false, attempts: done };
    if (done >= policy.maxRetries) return { restart: false, exhausted: true, attempts: done };
    this.#attempts.set(id, done + 1);
    return { restart: true, attempt: done + 1, delayMs: Math.min(this.#initialMs * 2 ** done, this.#maxMs) };
  }

  /** Whether the restart decided as `attempt` is still wanted: no user stop and no new run since. */
  due(id: string, attempt: number): boolean {
    return !this.#userStopped.has(id) && this.#attempts.get(id) === attempt;
  }
}
