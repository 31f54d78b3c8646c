// Restore and reconcile: gathers what containerd says of a plugin, asks
// restore-decision.ts what to do, and does it inside the id's queue.
import { join } from 'node:path';
import { isNotFound, type Container, type Process } from '../containerd/index.js';
import { cleanBundleAtExit, runtimeDir } from './bundle-dirs.js';
import { forceDeleteTask, removeEverything } from './cleanup.js';
import { UNKNOWN_EXIT_STATUS, dropSet, logDir, type ExecutorContext } from './context.js';
import { forPlugin, notFound } from './errors.js';
import { exitLater, reap } from './exit.js';
import { validateId } from './ids.js';
import { newPlugin, toStatus, type Plugin, type PluginExit, type PluginStatus } from './plugin.js';
import { decideRestore, type RestoreOutcome } from './restore-decision.js';
import { MANAGED_FILTER, exitFromLabels, runRecordOf, settingsOf, type PluginSettings, type RecordedExit } from './settings.js';
import { dialUnix, waitReady } from './ready.js';
import { PluginIO } from './stdio.js';
import { lookAgainLater, removeStrayBundleDirs, removeStrayLogs, removeStraySets } from './sweep.js';

/** Re-attaches to one plugin from containerd's records (see restoreAll). */
export async function restore(ctx: ExecutorContext, id: string): Promise<PluginStatus | undefined> {
  validateId(id);
  let container: Container;
  try {
    container = await ctx.client.containers.get(id);
  } catch (err) {
    if (isNotFound(err)) throw notFound(id);
    throw forPlugin(id, err);
  }
  const task = await ctx.client.tasks.get(id).catch((err) => (isNotFound(err) ? undefined : Promise.reject(forPlugin(id, err))));
  await restoreOne(ctx, container, task);
  await recheckReady(ctx, id);
  const p = ctx.plugins.get(id);
  return p ? toStatus(p, ctx) : undefined;
}

/**
 * Rebuilds state from containerd for every managed plugin this executor
 * owns: running tasks get their pipes or FIFOs re-opened (what they wrote while
 * nobody read is still in the pipe), stopped or vanished ones are cleaned
 * up and told through onExit, half-created ones are removed. Also the
 * reconcile after an event gap: exits missed meanwhile are found here.
 */
export async function restoreAll(ctx: ExecutorContext): Promise<{ running: number; stopped: number; exited: number }> {
  const [containers, tasks] = await Promise.all([ctx.client.containers.list([MANAGED_FILTER]), ctx.client.tasks.list()]);
  const byId = new Map(tasks.map((t) => [t.containerId, t]));
  const mine = containers.filter((c) => ctx.owns(c.id));
  const outcomes = await Promise.all(mine.map((c) => restoreOne(ctx, c, byId.get(c.id))));
  await Promise.all(mine.map((c) => recheckReady(ctx, c.id)));
  await removeStraySets(ctx, tasks);
  const ids = new Set(containers.map((c) => c.id));
  await removeStrayLogs(ctx, ids);
  await removeStrayBundleDirs(ctx, ids);
  const count = (o: RestoreOutcome): number => outcomes.filter((x) => x === o).length;
  return { running: count('running'), stopped: count('stopped'), exited: count('exited') };
}

function restoreOne(ctx: ExecutorContext, container: Container, listed: Process | undefined): Promise<RestoreOutcome> {
  const id = container.id;
  return ctx.queue.run(id, async (): Promise<RestoreOutcome> => {
    const known = ctx.plugins.get(id);
    // A plugin we already track may have changed since the list was taken
    // (a create or an exit ran ahead of us in its queue): ask again.
    const task = known
      ? await ctx.client.tasks.get(id).catch((err) => (isNotFound(err) ? undefined : Promise.reject(forPlugin(id, err))))
      : listed;
    const recorded = exitFromLabels(container.labels);
    const action = decideRestore({ known, task, recorded });
    const settings = settingsOf(container);
    const createdAt = container.createdAt ?? new Date();
    const taskSet = task ? ctx.sets.setOf(task.stdout) : undefined;
    switch (action.do) {
      case 'nothing':
        break;
      case 'finish-reap':
        await reap(ctx, action.known, undefined, action.taskSet ? taskSet : undefined);
        break;
      case 'adopt-recorded': {
        const p = recordedPlugin(ctx, container, action.recorded);
        // A plugind that died between reaping and cleaning up left the socket or mounts.
        if (p.settings.bundle) await cleanBundleAtExit(ctx, id);
        p.reaped = true;
        p.resolveExited(p.exit as PluginExit);
        break;
      }
      case 'report-vanished':
        // The task vanished without a recorded exit (containerd lost it, or
        // plugind died between creating container and task). A task create
        // still running in containerd for a caller that died can make the
        // task after this: look again later. The stdio set such a create
        // took is nobody's: it goes now.
        if (action.track) {
          ctx.plugins.set(id, newPlugin(id, { state: 'running', pid: 0, createdAt, settings, io: undefined, restartCount: runRecordOf(container.labels).restartCount }));
          for (const set of await ctx.sets.setsOf(id)) await dropSet(ctx, set);
        }
        exitLater(ctx, id, { pid: 0, exitStatus: UNKNOWN_EXIT_STATUS, exitedAt: new Date() });
        lookAgainLater(ctx, id, (again) => restore(ctx, again));
        break;
      case 'drop-late-task':
        // A create cut short (its worker died mid-call) whose task containerd
        // made after this plugin was found without one and told exited:
        // the task is never started. Drop it; the exit stays on record.
        ctx.log.warn({ plugin: id }, 'deleting a task created after its plugin was told exited');
        await forceDeleteTask(ctx, id);
        if (taskSet) await dropSet(ctx, taskSet);
        if (action.reap) await reap(ctx, action.known, undefined);
        break;
      case 'remove-half-created':
        // plugind died between task create and start: finish the failed create.
        ctx.log.warn({ plugin: id }, 'removing a plugin whose start never completed');
        ctx.plugins.delete(id);
        await removeEverything(ctx, id, known?.io, taskSet, { snapshotter: known?.settings.image?.snapshotter });
        break;
      case 'reap-recorded': {
        // Told and recorded before plugind (or its worker) died; only the
        // reaping is left, and the output still in the pipe.
        known?.io?.destroy();
        const p = recordedPlugin(ctx, container, action.recorded);
        await reap(ctx, p, await reopen(ctx, id, action.task, settings), taskSet);
        break;
      }
      case 'attach': {
        const t = action.task;
        let p = known;
        if (!p || action.fresh) {
          known?.io?.destroy();
          p = newPlugin(id, { state: 'running', pid: t.pid, createdAt, settings, io: undefined, restartCount: runRecordOf(container.labels).restartCount });
          ctx.plugins.set(id, p);
        }
        p.io ??= await reopen(ctx, id, t, settings);
        p.state = action.state;
        if (action.outcome === 'exited') exitLater(ctx, id, { pid: t.pid, exitStatus: t.exitStatus, exitedAt: t.exitedAt ?? new Date() });
        break;
      }
    }
    return action.outcome;
  });
}

/**
 * A running Docker plugin found by a restore is only asked whether its
 * socket answers (nothing of it is touched: it kept serving while no
 * plugind ran). One that does not answer yet is asked again in the
 * background, within its ready timeout, and left running either way.
 */
async function recheckReady(ctx: ExecutorContext, id: string): Promise<void> {
  const p = ctx.plugins.get(id);
  const b = p?.settings.bundle;
  if (!p || !b || p.state === 'stopped' || p.ready) return;
  const socket = join(runtimeDir(ctx, id), b.socket);
  if ((await dialUnix(socket)) === undefined) {
    p.ready = true;
    return;
  }
  void waitReady(p, socket, b.readyTimeoutMs).then((r) => {
    if (!r.ready && r.why === 'timeout') ctx.log.warn({ plugin: id, socket, err: r.lastError }, 'restored plugin does not answer on its socket; left running');
  });
}

/** Opens a task's pipes or FIFOs again to copy its output; undefined when they are not ours or cannot be opened. */
async function reopen(ctx: ExecutorContext, id: string, task: Process, settings: PluginSettings): Promise<PluginIO | undefined> {
  const set = ctx.sets.setOf(task.stdout);
  if (!set) return undefined;
  return PluginIO.open(set, () => ctx.sets.openReadEnds(set), logDir(ctx, id), ctx.stdioOptions(id, settings)).catch((err: Error) => {
    ctx.log.warn({ plugin: id, err }, 'restore: stdio could not be re-opened; output is not copied');
    return undefined;
  });
}

/** A stopped plugin rebuilt from its container and the exit recorded on it; it replaces any record of the id. */
function recordedPlugin(ctx: ExecutorContext, container: Container, recorded: RecordedExit): Plugin {
  const { id } = container;
  const p = newPlugin(id, { state: 'stopped', pid: recorded.pid, createdAt: container.createdAt ?? new Date(), settings: settingsOf(container), io: undefined, ...runRecordOf(container.labels) });
  p.exit = { id, ...recorded };
  ctx.plugins.set(id, p);
  return p;
}
