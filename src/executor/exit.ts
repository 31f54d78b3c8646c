// Exits, told once and then reaped: the exit recorded on the container, the
// task deleted (a few at a time), output drained, stdio set removed (a FIFO
// set recycled).
import { rm } from 'node:fs/promises';
import { removeImageRootfs } from '../images/rootfs.js';
import { ignoreNotFound, isNotFound } from '../common/errors.js';
import { cleanBundleAtExit, removeBundleDirs } from './bundle-dirs.js';
import { dropSet, logDir, type ExecutorContext } from './context.js';
import type { ExitSeen, Plugin, PluginExit } from './plugin.js';
import { exitToLabels } from './settings.js';
import type { PluginIO } from './stdio.js';
import type { StdioSet } from './stdio-sets.js';

/**
 * Handles one exit, once. The exit is recorded in memory and told to
 * onExit first; then it is reaped: task deleted, copy loops drained and
 * closed, stdio set removed, exit recorded on the container (or container and
 * logs removed, with autoRemove). Reaping costs a shim round trip (~20 ms)
 * that listeners need not wait for; everything else done to this id (rm,
 * run, logs, stop's return) queues behind it. A repeated or stale exit
 * (another pid) is ignored. `told`: whoever fed the exit in has told it
 * already (the coordinator, as the event reached it): only reap.
 */
export function handleExit(ctx: ExecutorContext, id: string, e: ExitSeen, eventTimestampMs?: number, told = false): Promise<void> {
  return ctx.queue.run(id, async () => {
    const p = ctx.plugins.get(id);
    if (!p || p.state === 'stopped' || (e.pid !== 0 && p.pid !== 0 && p.pid !== e.pid)) return;
    const exit: PluginExit = { id, pid: p.pid || e.pid, exitStatus: e.exitStatus, exitedAt: e.exitedAt };
    if (eventTimestampMs !== undefined) exit.eventTimestampMs = eventTimestampMs;
    if (p.oomKilled) exit.oomKilled = true;
    const io = p.io;
    p.state = 'stopped';
    p.ready = false;
    p.io = undefined;
    p.exit = exit;
    p.reaped = false;
    if (!told) {
      try {
        ctx.onExit(exit);
      } catch (err) {
        ctx.log.error({ plugin: id, err }, 'exit callback threw');
      }
    }
    await reap(ctx, p, io);
  });
}

/** Called from inside the id's queue: the exit is queued behind the current work. */
export function exitLater(ctx: ExecutorContext, id: string, e: ExitSeen): void {
  void handleExit(ctx, id, e).catch((err: Error) => ctx.log.error({ plugin: id, err }, 'exit handling failed'));
}

/**
 * Called inside the id's queue. The exit is recorded on the container
 * first, so that a plugind that dies before the task is deleted finds it
 * recorded and does not report it again. A failure leaves `reaped` false;
 * restoreAll retries it.
 */
export async function reap(ctx: ExecutorContext, p: Plugin, io: PluginIO | undefined, set: StdioSet | undefined = io?.set): Promise<void> {
  const { id } = p;
  const exit = p.exit as PluginExit;
  try {
    if (!p.settings.autoRemove) {
      await ctx.client.containers.setLabels(id, exitToLabels(exit, p.stoppedByUser)).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
    }
    // Task deletes are the heavy part of an exit (the shim shuts down); a
    // few at a time keep a mass exit from starving kills and creates.
    await ctx.reapSlots.acquire();
    try {
      await ctx.client.tasks.delete(id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    } finally {
      ctx.reapSlots.release();
    }
  } finally {
    // After the delete the shim has closed its write ends: EOF follows.
    // Without it (containerd away), what arrives within close()'s wait is
    // kept and the set is removed: the copy loops are this call's to end,
    // a retry gets no io.
    if (io) {
      // Cleanly ended FIFOs go back to the pool: no mkfifo, no unlink.
      const clean = await io.close();
      await dropSet(ctx, io.set, clean ? 'recycle' : 'remove');
    } else if (set) {
      await dropSet(ctx, set);
    }
  }
  // The task is gone: its socket is stale and its propagated mounts go with it.
  if (p.settings.bundle) await cleanBundleAtExit(ctx, id);
  if (p.settings.autoRemove) {
    await ctx.client.containers.delete(id).catch(ignoreNotFound);
    await rm(logDir(ctx, id), { recursive: true, force: true });
    if (p.settings.bundle) await removeBundleDirs(ctx, id);
    if (p.settings.image) await removeImageRootfs(ctx.client, p.settings.image.snapshotter, id).catch((err: Error) => ctx.log.warn({ plugin: id, err }, 'rootfs snapshot not removed'));
    if (ctx.plugins.get(id) === p) ctx.plugins.delete(id);
  }
  p.reaped = true;
  p.resolveExited(exit);
}
