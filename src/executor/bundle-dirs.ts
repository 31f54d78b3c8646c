// A Docker plugin's two host dirs and what is mounted on them: the runtime
// dir (its /run/docker/plugins, where the socket is made) and the
// propagated mount. Made before the task starts, emptied and unmounted at
// every exit (so a run or a policy restart finds no stale socket), removed
// with the plugin. moby's manager does the same in enable / HandleExitEvent.
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutorContext } from './context.js';
import { MNT_DETACH, MS_BIND, MS_REC, MS_SHARED, mountSync, umountSync } from './libc.js';

export function runtimeDir(ctx: ExecutorContext, id: string): string {
  return join(ctx.runRoot, id);
}

export function propagatedDir(ctx: ExecutorContext, id: string): string {
  return join(ctx.propagatedRoot, id);
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at dir or below it in plugind's mount namespace, in mount order. */
export function mountsUnder(dir: string, mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const found: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const point = line.split(' ')[4];
    if (point === undefined) continue;
    const p = unescapeMountPath(point);
    if (p === dir || p.startsWith(`${dir}/`)) found.push(p);
  }
  return found;
}

/**
 * Unmounts everything at dir and below, last mounted first; detached, so a
 * busy mount does not keep the plugin from stopping. Bounded: a mount that
 * comes back each time (something keeps mounting) is reported, not chased.
 */
export function unmountAll(dir: string): void {
  for (let round = 0; round < 64; round++) {
    const mounts = mountsUnder(dir);
    const last = mounts[mounts.length - 1];
    if (last === undefined) return;
    try {
      umountSync(last, MNT_DETACH);
    } catch (err) {
      // EINVAL: gone meanwhile (a detach above took it along).
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL' && (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`${dir}: mounts still there after 64 unmounts`);
}

/** Removes what is in dir (not dir itself); a dir that is not there is made later. */
async function empty(dir: string): Promise<void> {
  const names = await readdir(dir).catch(() => [] as string[]);
  await Promise.all(names.map((n) => rm(join(dir, n), { recursive: true, force: true })));
}

/**
 * Before the task is created: the runtime dir made (0700) and emptied, and,
 * with a propagated mount, its dir made a shared mount of its own (a bind
 * onto itself, then MS_SHARED|MS_REC), so that what the plugin mounts under
 * its PropagatedMount shows on the host (moby's mount.MakeRShared).
 */
export async function prepareBundleDirs(ctx: ExecutorContext, id: string, propagated: boolean): Promise<void> {
  await mkdir(ctx.runRoot, { recursive: true, mode: 0o700 });
  const run = runtimeDir(ctx, id);
  await mkdir(run, { recursive: true, mode: 0o700 });
  await empty(run);
  if (!propagated) return;
  await mkdir(ctx.propagatedRoot, { recursive: true, mode: 0o700 });
  const dir = propagatedDir(ctx, id);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  // Whatever a run before left (plugind killed mid-exit) goes first: one bind, not a stack.
  unmountAll(dir);
  mountSync(dir, dir, null, MS_BIND);
  try {
    mountSync(null, dir, null, MS_SHARED | MS_REC);
  } catch (err) {
    unmountAll(dir);
    throw err;
  }
}

/** At every exit: stale socket and files gone, nothing left mounted under the propagated dir. */
export async function cleanBundleAtExit(ctx: ExecutorContext, id: string): Promise<void> {
  const dir = propagatedDir(ctx, id);
  if (existsSync(dir)) unmountAll(dir);
  await empty(runtimeDir(ctx, id));
}

/** At rm (or a failed create): unmounted, and both dirs removed. Missing pieces are fine. */
export async function removeBundleDirs(ctx: ExecutorContext, id: string): Promise<void> {
  const dir = propagatedDir(ctx, id);
  if (existsSync(dir)) {
    unmountAll(dir);
    await rm(dir, { recursive: true, force: true });
  }
  await rm(runtimeDir(ctx, id), { recursive: true, force: true });
}

/** Ids that have a runtime or propagated dir. */
export async function bundleDirIds(ctx: ExecutorContext): Promise<Set<string>> {
  const [a, b] = await Promise.all([readdir(ctx.runRoot).catch(() => [] as string[]), readdir(ctx.propagatedRoot).catch(() => [] as string[])]);
  return new Set([...a, ...b]);
}
