// What the executor's parts share: the containerd client, the stdio sets, the
// per-id queue and the plugin table. One object, built by Executor, passed to each part.
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import { packRuncOptions, type Any, type ContainerdClient, type Logger, type RuncOptions } from '../containerd/index.js';
import { StdioSets, type StdioSet } from './stdio-sets.js';
import type { KeyedQueue, Semaphore } from './keyed-queue.js';
import type { Plugin, PluginExit } from './plugin.js';
import type { PluginSettings } from './settings.js';
import type { StdioOptions } from './stdio.js';

export interface ExecutorContext {
  readonly client: ContainerdClient;
  /** The container's runtime for a plugin whose runc shim runs this binary ('' : runc on the shim's PATH). */
  readonly runtime: (binary: string) => { name: string; options?: Any };
  /** Where new tasks' stdio comes from, and the sets of tasks found. */
  readonly sets: StdioSets;
  /** Plugin logs in `<logRoot>/<id>`. */
  readonly logRoot: string;
  /** Docker plugins' runtime dirs, `<runRoot>/<id>`, and propagated mounts, `<propagatedRoot>/<id>`. */
  readonly runRoot: string;
  readonly propagatedRoot: string;
  /** Every operation and exit of one id runs through here, in order. */
  readonly queue: KeyedQueue;
  /** Bounds the task deletes of reaping (see exit.ts). */
  readonly reapSlots: Semaphore;
  readonly plugins: Map<string, Plugin>;
  /** Timers of late-task checks (see sweep.ts), cleared by close(). */
  readonly lateChecks: Set<NodeJS.Timeout>;
  readonly onExit: (exit: PluginExit) => void;
  /** See ExecutorOptions.onStarting. */
  readonly onStarting: (id: string, pid: number) => void;
  readonly onStartFailed: (id: string, pid: number) => void;
  readonly owns: (id: string) => boolean;
  readonly log: Logger;
  readonly stdioOptions: (id: string, settings: PluginSettings) => StdioOptions;
}

export const SIGKILL = osConstants.signals.SIGKILL;
export const SIGTERM = osConstants.signals.SIGTERM;
// When a task's exit status cannot be known (its task vanished), as containerd reports it.
export const UNKNOWN_EXIT_STATUS = 255;

/** ExecutorContext.runtime for runtime name with these runc options: packed once per binary, not per create. */
export function runtimesOf(name: string, runc: RuncOptions | undefined): ExecutorContext['runtime'] {
  const runtimes = new Map<string, { name: string; options?: Any }>();
  return (binary) => {
    let r = runtimes.get(binary);
    if (!r) {
      r = { name };
      if (runc || binary) r.options = packRuncOptions({ ...runc, binaryName: binary });
      runtimes.set(binary, r);
    }
    return r;
  };
}

export function logDir(ctx: ExecutorContext, id: string): string {
  return join(ctx.logRoot, id);
}

/**
 * Removes a stdio set (or recycles a FIFO set into its pool) as part of
 * cleaning up: a failure must not fail the cleanup, but it leaves a set
 * behind, so it is said (the next restore's sweep removes strays).
 */
export async function dropSet(ctx: ExecutorContext, set: StdioSet, how: 'remove' | 'recycle' = 'remove'): Promise<void> {
  try {
    await ctx.sets.remove(set, how);
  } catch (err) {
    ctx.log.warn({ err, set: StdioSets.pathOf(set) }, 'stdio set not removed; the next restore sweeps it');
  }
}
