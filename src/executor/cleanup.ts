// Forced cleanup of one id: what a failed create, a replace, remove() and a
// restore of a half-made plugin all need, whatever pieces are left.
import { rm } from 'node:fs/promises';
import { ignoreNotFound, isNotFound } from '../common/errors.js';
import { removeImageRootfs } from '../images/rootfs.js';
import { removeBundleDirs } from './bundle-dirs.js';
import { SIGKILL, logDir, type ExecutorContext } from './context.js';
import type { StdioSet } from './stdio-sets.js';
import type { PluginIO } from './stdio.js';

/**
 * Force-deletes task and container and removes its stdio set, logs, a Docker plugin's
 * dirs (unmounted first) and, given its snapshotter, the rootfs snapshot of a
 * plugin run from an image; missing pieces are fine.
 */
export async function removeEverything(
  ctx: ExecutorContext,
  id: string,
  io: PluginIO | undefined,
  set: StdioSet | undefined,
  how: {
    keepLogs?: boolean;
    /** The image plugin's snapshotter: its rootfs snapshot goes too. */
    snapshotter?: string | undefined;
    /** The task is known deleted already (a reaped exit): no call to delete it again. */
    taskGone?: boolean;
  } = {},
): Promise<void> {
  const { keepLogs = false, snapshotter, taskGone = false } = how;
  const steps: Array<Promise<unknown>> = [];
  if (!taskGone) await forceDeleteTask(ctx, id).catch((err: Error) => ctx.log.warn({ plugin: id, err }, 'cleanup: task not deleted'));
  io?.destroy();
  const containerGone = ctx.client.containers.delete(id).catch(ignoreNotFound);
  steps.push(containerGone);
  if (set) steps.push(ctx.sets.remove(set));
  if (!keepLogs) steps.push(rm(logDir(ctx, id), { recursive: true, force: true }));
  // After the task: nothing may hold the propagated mount any more.
  steps.push(removeBundleDirs(ctx, id));
  // After the container: its record names the snapshot.
  if (snapshotter) steps.push(containerGone.catch(() => {}).then(() => removeImageRootfs(ctx.client, snapshotter, id)));
  const results = await Promise.allSettled(steps);
  for (const r of results) if (r.status === 'rejected') ctx.log.warn({ plugin: id, err: r.reason as Error }, 'cleanup step failed');
}

/** Deletes the task whatever its state: a created or running task is killed first. */
export async function forceDeleteTask(ctx: ExecutorContext, id: string): Promise<void> {
  try {
    await ctx.client.tasks.delete(id);
    return;
  } catch (err) {
    if (isNotFound(err)) return;
  }
  // A Created task can't be deleted until killed (nor can a running one).
  await ctx.client.tasks.kill(id, SIGKILL, { all: true }).catch(ignoreNotFound);
  await ctx.client.tasks.wait(id, { timeoutMs: 10_000 }).catch(ignoreNotFound);
  await ctx.client.tasks.delete(id).catch(ignoreNotFound);
}
