// Telling each plugin exit exactly once, on the main thread: an exit event
// for the task this thread knows runs is told as it arrives, before any
// thread hop; any other exit comes from the shard that found it. The last
// exit told per id is kept on disk (ToldExits), so that one told again by a
// worker (or a plugind) that died before recording it is not told twice.
import type { PluginExit } from '../executor/index.js';
import type { ExitLag } from './exit-lag.js';
import type { ToldExits } from './told-exits.js';

export class ExitTeller {
  /**
   * The pid of each plugin's running task, as far as this thread knows
   * (from create, restart and restore replies).
   */
  readonly #running = new Map<string, number>();
  /** Plugins whose current task had an OOM kill: their exit, when told, says so. */
  readonly #oomKilled = new Set<string>();
  readonly #told: ToldExits;
  readonly #lag: ExitLag;
  readonly #onTold: (exit: PluginExit) => void;

  constructor(told: ToldExits, lag: ExitLag, onTold: (exit: PluginExit) => void) {
    this.#told = told;
    this.#lag = lag;
    this.#onTold = onTold;
  }

  /** An exit event of a plugin's init: told here if it is the task known to run; returns whether it was. */
  event(exit: PluginExit & { eventTimestampMs: number }): boolean {
    this.#lag.observe(exit.id, exit.pid, exit.eventTimestampMs);
    const known = this.#running.get(exit.id) === exit.pid;
    if (known) this.tell(exit);
    return known;
  }

  /**
   * A task runs (or is about to start) with this pid, says a shard (a push
   * before the start; create, restart and list replies). An exit that came
   * first was told by the shard already: this is older news.
   */
  started(id: string, pid: number): void {
    if (!this.#told.has(id, pid)) this.#running.set(id, pid);
  }

  /** That task's start failed: it is deleted next, and its exit is not one to tell. */
  startFailed(id: string, pid: number): void {
    if (this.#running.get(id) === pid) this.#running.delete(id);
  }

  /** The current task had an OOM kill: its exit says so. */
  oomKilled(id: string): void {
    this.#oomKilled.add(id);
  }

  /** Tells an exit unless it was told already. */
  tell(told: PluginExit): void {
    let exit = told;
    if (this.#oomKilled.delete(exit.id)) exit = { ...exit, oomKilled: true };
    if (this.#running.get(exit.id) === exit.pid) this.#running.delete(exit.id);
    if (this.#told.has(exit.id, exit.pid)) return;
    this.#told.add(exit.id, exit.pid);
    this.#onTold(exit);
  }

  /** A new run of the id: its next exit is news whatever its pid. */
  newRun(id: string): void {
    this.#told.delete(id);
  }

  /** The plugin is gone. */
  forget(id: string): void {
    this.#running.delete(id);
    this.#told.delete(id);
    this.#lag.forget(id);
  }

  close(): void {
    this.#told.close();
  }
}
