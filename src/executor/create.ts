// Creating a plugin: moby's path in three RPCs when the id is free, the
// replace-and-retry when containerd holds a stale record of it, and cleanup
// of everything made when any step fails.
import { rm } from 'node:fs/promises';
import { ErrorCode, isAlreadyExists, isNotFound, type Any, type Container, type Mount, type Process } from '../containerd/index.js';
import { cleanBundleAtExit, prepareBundleDirs } from './bundle-dirs.js';
import { forceDeleteTask, removeEverything } from './cleanup.js';
import { dropSet, logDir, type ExecutorContext } from './context.js';
import { PluginError, forPlugin } from './errors.js';
import { setName } from './fifo.js';
import { newPlugin, type Plugin } from './plugin.js';
import { restartToLabels, settingsToLabels, type PluginSettings } from './settings.js';
import { PluginIO } from './stdio.js';
import { StdioSets, type StdioSet } from './stdio-sets.js';

export interface CreateHow {
  /** Replace a stopped plugin of the id. */
  replace: boolean;
  /** Keep the id's logs when an old record is replaced (a restart carries them on). */
  keepLogs: boolean;
  /** The rootfs as mounts for Tasks.Create (a snapshot), when the spec's root is relative. */
  rootfsMounts?: Mount[];
}

/**
 * ALREADY_EXISTS unless the id is free, or its plugin is stopped and
 * replace is asked for; returns the stopped plugin to replace, if any.
 */
export function refuseTaken(ctx: ExecutorContext, id: string, replace: boolean): Plugin | undefined {
  const known = ctx.plugins.get(id);
  if (known && known.state !== 'stopped') {
    throw new PluginError(ErrorCode.AlreadyExists, `plugin ${id} is already running (pid ${known.pid})`, { plugin: id });
  }
  // A stopped plugin is still the user's (listed, its logs kept): replacing it is asked for, not assumed.
  if (known && !replace) {
    throw new PluginError(ErrorCode.AlreadyExists, `plugin ${id} exists (stopped); remove it first (plugind rm ${id}) or run with --replace`, { plugin: id });
  }
  return known;
}

/** Runs inside the id's queue, with settings and spec already checked (see validate.ts). */
export async function createPlugin(ctx: ExecutorContext, id: string, settings: PluginSettings, packed: Any, how: CreateHow): Promise<{ pid: number; plugin: Plugin }> {
  const { keepLogs } = how;
  const known = refuseTaken(ctx, id, how.replace);
  const { image } = settings;
  const container = {
    id,
    labels: settingsToLabels(settings),
    runtime: ctx.runtime(settings.runtimeBinary),
    spec: packed,
    // As containerd's Go client sets them: GC keeps the snapshot, rmi sees the image in use.
    ...(image ? { image: image.ref, snapshotter: image.snapshotter, snapshotKey: id } : {}),
  };
  // A stopped record we know of is replaced without a failing create first.
  if (known) await replaceStale(ctx, id, keepLogs, image !== undefined);
  // The stdio set and log file are readied while containerd creates the
  // container: they do not depend on each other.
  const prepare = (): Promise<{ set: StdioSet; io: PluginIO }> => prepareIO(ctx, id, settings);
  let prepared = prepare();
  prepared.catch(() => {});
  let created: Container;
  try {
    created = await ctx.client.containers.create(container);
  } catch (err) {
    const stale = isAlreadyExists(err);
    // An old record's cleanup removes its log dir: give up what was prepared first.
    const p = await prepared.catch(() => undefined);
    p?.io.destroy();
    await Promise.all([p && dropSet(ctx, p.set), stale ? undefined : rm(logDir(ctx, id), { recursive: true, force: true })]);
    if (!stale) throw forPlugin(id, err);
    await replaceStale(ctx, id, keepLogs, image !== undefined);
    try {
      created = await ctx.client.containers.create(container);
    } catch (retryErr) {
      throw forPlugin(id, retryErr);
    }
    prepared = prepare();
    prepared.catch(() => {});
  }
  let set: StdioSet | undefined;
  let io: PluginIO | undefined;
  try {
    ({ set, io } = await prepared);
    // A Docker plugin's runtime dir (no stale socket) and propagated mount, before runc binds them.
    if (settings.bundle) await prepareBundleDirs(ctx, id, settings.bundle.propagatedMount !== '');
    // A re-run or a policy restart of an image's plugin asks for its snapshot's mounts again.
    const rootfs = how.rootfsMounts ?? (image ? await ctx.client.snapshots.mounts(image.snapshotter, id) : undefined);
    const pid = await createTask(ctx, id, set, io, rootfs);
    const plugin = newPlugin(id, { state: 'created', pid, createdAt: created.createdAt ?? new Date(), settings, io });
    ctx.plugins.set(id, plugin);
    await startTask(ctx, id, pid);
    plugin.state = 'running';
    return { pid, plugin };
  } catch (err) {
    ctx.plugins.delete(id);
    if (!io) {
      const p = await prepared.catch(() => undefined);
      io = p?.io;
      set = p?.set;
    }
    await removeEverything(ctx, id, io, set, { snapshotter: image?.snapshotter });
    throw forPlugin(id, err);
  }
}

/**
 * Starts the created task, saying so first (onStarting: an exit as it
 * starts is told on arrival) and, if the start fails, before it is deleted.
 */
async function startTask(ctx: ExecutorContext, id: string, pid: number): Promise<void> {
  ctx.onStarting(id, pid);
  try {
    await ctx.client.tasks.start(id);
  } catch (err) {
    ctx.onStartFailed(id, pid);
    throw err;
  }
}

/**
 * A stdio set and the id's log file, opened; a FIFO set's read ends are
 * attached now, a pipe set's once its task exists (createTask).
 */
async function prepareIO(ctx: ExecutorContext, id: string, settings: PluginSettings): Promise<{ set: StdioSet; io: PluginIO }> {
  const set = await ctx.sets.take(setName(id));
  try {
    const options = ctx.stdioOptions(id, settings);
    const logs = logDir(ctx, id);
    const io = StdioSets.opensAfterCreate(set) ? await PluginIO.prepare(set, logs, options) : await PluginIO.open(set, () => ctx.sets.openReadEnds(set), logs, options);
    return { set, io };
  } catch (err) {
    await dropSet(ctx, set);
    throw err;
  }
}

/** Tasks.Create with the set as the task's stdio, then the read ends not attached yet; returns the pid. */
async function createTask(ctx: ExecutorContext, id: string, set: StdioSet, io: PluginIO, rootfs: Mount[] | undefined): Promise<number> {
  const pid = await ctx.client.tasks.create({ containerId: id, ...StdioSets.taskIO(set), ...(rootfs ? { rootfs } : {}) });
  if (!io.attached) io.attach(await ctx.sets.openReadEnds(set));
  return pid;
}

/**
 * Runs a stopped, reaped plugin again on its own container record, as its
 * restart policy does: a new task (2 RPCs), its output appended to the same
 * logs, then the record's labels say it runs again with this restart count.
 * The stopped plugin stays listed until the new task runs; if that fails it
 * stays stopped, as it was, and nothing made for the new task is left.
 */
export async function restartPlugin(ctx: ExecutorContext, id: string, restartCount: number): Promise<{ pid: number; plugin: Plugin }> {
  const old = ctx.plugins.get(id);
  if (!old) throw new PluginError(ErrorCode.NotFound, `plugin ${id} not found`, { plugin: id });
  // Run again by the user meanwhile: nothing for the policy to do.
  if (old.state !== 'stopped') throw new PluginError(ErrorCode.AlreadyExists, `plugin ${id} is already running (pid ${old.pid})`, { plugin: id });
  if (!old.reaped) throw new PluginError(ErrorCode.FailedPrecondition, `plugin ${id}: its exit is not reaped yet`, { plugin: id });
  const { settings } = old;
  const { set, io } = await prepareIO(ctx, id, settings);
  let created = false;
  try {
    if (settings.bundle) await prepareBundleDirs(ctx, id, settings.bundle.propagatedMount !== '');
    const rootfs = settings.image ? await ctx.client.snapshots.mounts(settings.image.snapshotter, id) : undefined;
    // Set before: a failure after Tasks.Create (opening the pipes) leaves a task.
    created = true;
    const pid = await createTask(ctx, id, set, io, rootfs);
    const plugin = newPlugin(id, { state: 'created', pid, createdAt: old.createdAt, settings, io, restartCount });
    ctx.plugins.set(id, plugin);
    await startTask(ctx, id, pid);
    plugin.state = 'running';
    // After the start: a record saying "no exit" must never describe a task that did not run.
    await ctx.client.containers.setLabels(id, restartToLabels(restartCount)).catch((err: Error) =>
      ctx.log.warn({ plugin: id, err }, 'restart count not recorded on the container'),
    );
    return { pid, plugin };
  } catch (err) {
    if (ctx.plugins.get(id) !== old) ctx.plugins.set(id, old);
    io.destroy();
    if (created) await forceDeleteTask(ctx, id).catch((e: Error) => ctx.log.warn({ plugin: id, err: e }, 'task of a failed restart not deleted'));
    await dropSet(ctx, set);
    if (settings.bundle) await cleanBundleAtExit(ctx, id);
    throw forPlugin(id, err);
  }
}

/** The id is taken in containerd: replace it unless its task runs. With keepSnapshot the new run uses the id's snapshot. */
async function replaceStale(ctx: ExecutorContext, id: string, keepLogs: boolean, keepSnapshot: boolean): Promise<void> {
  let task: Process | undefined;
  try {
    task = await ctx.client.tasks.get(id);
  } catch (err) {
    if (!isNotFound(err)) throw forPlugin(id, err);
  }
  if (task && (task.status === 'running' || task.status === 'paused' || task.status === 'pausing')) {
    throw new PluginError(ErrorCode.AlreadyExists, `plugin ${id} is already running (pid ${task.pid})`, { plugin: id });
  }
  const old = ctx.plugins.get(id);
  ctx.plugins.delete(id);
  ctx.log.info({ plugin: id, task: task?.status ?? 'none' }, 'replacing stale plugin record');
  const oldSet = task ? ctx.sets.setOf(task.stdout) : undefined;
  await removeEverything(ctx, id, old?.io, oldSet, { keepLogs, snapshotter: keepSnapshot ? undefined : old?.settings.image?.snapshotter, taskGone: !task });
}
