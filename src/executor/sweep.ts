// What a plugind that died mid-create leaves behind: stdio sets, log dirs and
// Docker plugins' runtime and propagated dirs nobody uses, and tasks
// containerd creates after their caller is gone.
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Process } from '../containerd/index.js';
import { bundleDirIds, removeBundleDirs } from './bundle-dirs.js';
import { dropSet, logDir, type ExecutorContext } from './context.js';
import { isNotFound } from '../common/errors.js';
import { StdioSets } from './stdio-sets.js';

// When to look again for the task of a plugin found without one (a task
// create whose caller died can still finish in containerd).
const LATE_TASK_CHECKS_MS = [2_000, 15_000];

/**
 * Restores id again after LATE_TASK_CHECKS_MS each, while it is the
 * stopped plugin found without a task: a task created late is deleted.
 */
export function lookAgainLater(ctx: ExecutorContext, id: string, restore: (id: string) => Promise<unknown>): void {
  for (const ms of LATE_TASK_CHECKS_MS) {
    const timer = setTimeout(() => {
      ctx.lateChecks.delete(timer);
      if (ctx.plugins.get(id)?.state !== 'stopped') return;
      void restore(id).catch((err: Error) => {
        if (!isNotFound(err)) ctx.log.warn({ plugin: id, err }, 'late task check failed');
      });
    }, ms);
    timer.unref();
    ctx.lateChecks.add(timer);
  }
}

export function cancelLateChecks(ctx: ExecutorContext): void {
  for (const t of ctx.lateChecks) clearTimeout(t);
  ctx.lateChecks.clear();
}

/** Stdio sets (pipe or FIFO) that no task uses: left by a plugind that died mid-create. */
export async function removeStraySets(ctx: ExecutorContext, tasks: Process[]): Promise<void> {
  const inUse = new Set<string>();
  for (const t of tasks) {
    const set = ctx.sets.setOf(t.stdout);
    if (set) inUse.add(StdioSets.pathOf(set));
  }
  for (const p of ctx.plugins.values()) if (p.io) inUse.add(StdioSets.pathOf(p.io.set));
  for (const { id, set } of await ctx.sets.all()) {
    // A create of this id may hold a set it has not handed to containerd yet.
    if (!ctx.owns(id) || ctx.queue.has(id)) continue;
    if (!inUse.has(StdioSets.pathOf(set))) await dropSet(ctx, set);
  }
}

/** Log dirs of ids with no container: left by a create cut short before its container existed. */
export async function removeStrayLogs(ctx: ExecutorContext, containers: Set<string>): Promise<void> {
  const names = await readdir(ctx.logRoot).catch(() => [] as string[]);
  for (const id of names) {
    if (containers.has(id) || ctx.plugins.has(id) || ctx.queue.has(id) || !ctx.owns(id)) continue;
    await rm(logDir(ctx, id), { recursive: true, force: true });
  }
}

/** Runtime and propagated dirs of ids with no container (unmounted first): left by a plugind that died mid-create or mid-rm. */
export async function removeStrayBundleDirs(ctx: ExecutorContext, containers: Set<string>): Promise<void> {
  for (const id of await bundleDirIds(ctx)) {
    if (containers.has(id) || ctx.plugins.has(id) || ctx.queue.has(id) || !ctx.owns(id)) continue;
    await removeBundleDirs(ctx, id).catch((err: Error) => ctx.log.warn({ plugin: id, err }, 'stray plugin dirs not removed'));
  }
}
