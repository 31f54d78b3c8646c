// The exits told lately, for `events --since`: a bounded window in memory
// (the last RECENT_EXITS; a plugind restart starts it empty), each with the
// time it was told.
import type { PluginExit } from '../executor/index.js';

export const RECENT_EXITS = 1000;

export interface ToldExit {
  exit: PluginExit;
  /** When plugind told it (ms since the epoch). */
  toldAtMs: number;
}

export class RecentExits {
  readonly #ring: ToldExit[] = [];
  readonly #max: number;

  constructor(max = RECENT_EXITS) {
    this.#max = max;
  }

  add(exit: PluginExit, toldAtMs = Date.now()): void {
    this.#ring.push({ exit, toldAtMs });
    if (this.#ring.length > this.#max) this.#ring.splice(0, this.#ring.length - this.#max);
  }

  /** Those told at or after sinceMs (and before untilMs), oldest first. */
  since(sinceMs: number, untilMs = Infinity): ToldExit[] {
    return this.#ring.filter((t) => t.toldAtMs >= sinceMs && t.toldAtMs < untilMs);
  }
}
