// Acting on a restart policy's decision: an exit (or a plugin found stopped
// at start) is judged by Restarts, a restart is scheduled with its backoff,
// and run by the plugin's shard when due. A restart that fails is a failed
// run for the policy to judge, once.
import { ErrorCode, isErrorCode, type Logger } from '../containerd/index.js';
import type { PluginExit } from '../executor/index.js';
import type { Restarts } from './restarts.js';

export interface RestartRunnerOptions {
  restarts: Restarts;
  log: Logger;
  closing: () => boolean;
  /** A run of the id has not answered yet: an exit meanwhile fails that run, the policy has no say. */
  runPending: (id: string) => boolean;
  /** Runs the plugin again as its count-th restart (the shard's restart request). */
  restart: (id: string, restartCount: number) => Promise<{ pid: number; startedAtMs: number }>;
  /** Told before a restart: its next exit is news again. */
  beforeRestart: (id: string) => void;
  /** Told after a restart: the task that runs now. */
  started: (id: string, pid: number) => void;
}

export class RestartRunner {
  readonly #o: RestartRunnerOptions;

  constructor(options: RestartRunnerOptions) {
    this.#o = options;
  }

  /** The restart policy's say on an exit (atStart: a plugin found stopped at plugind's start). */
  onExit(exit: Pick<PluginExit, 'id' | 'exitStatus' | 'exitedAt'>, atStart = false): void {
    const { id } = exit;
    const { restarts, log } = this.#o;
    if (this.#o.closing() || this.#o.runPending(id)) return;
    const next = restarts.decide(id, exit.exitStatus, exit.exitedAt.getTime(), atStart);
    if (!next.restart) {
      if (next.exhausted) log.warn({ plugin: id, restarts: next.count }, 'restart policy exhausted; the plugin stays stopped');
      return;
    }
    log.info({ plugin: id, exitStatus: exit.exitStatus, restartCount: next.count, delayMs: next.delayMs }, atStart ? 'restarting plugin found stopped' : 'restarting plugin');
    restarts.schedule(id, next.delayMs, () => void this.#restartNow(id, next.count));
  }

  async #restartNow(id: string, restartCount: number): Promise<void> {
    if (this.#o.closing()) return;
    this.#o.beforeRestart(id);
    try {
      const { pid, startedAtMs } = await this.#o.restart(id, restartCount);
      this.#o.started(id, pid);
      this.#o.restarts.started(id, startedAtMs);
    } catch (err) {
      // Gone, or run by the user meanwhile: the policy has nothing left to do.
      if (isErrorCode(err, ErrorCode.NotFound) || isErrorCode(err, ErrorCode.AlreadyExists)) return;
      this.#o.log.error({ plugin: id, err }, 'restart failed');
      // A failed run for the policy to judge; if the run's exit was told
      // (a Docker plugin stopped for not getting ready), its restart is pending already.
      this.onExit({ id, exitStatus: 1, exitedAt: new Date() });
    }
  }
}
