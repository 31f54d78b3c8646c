// Signals and stop: moby's SIGTERM-then-SIGKILL, tolerant of the kill that
// races the exit. The exit itself is told and reaped by exit.ts.
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorCode, ignoreNotFound, isErrorCode, isNotFound } from '../common/errors.js';
import { SIGKILL, SIGTERM, UNKNOWN_EXIT_STATUS, type ExecutorContext } from './context.js';
import { forPlugin } from './errors.js';
import { handleExit } from './exit.js';
import type { Plugin, PluginExit } from './plugin.js';

/** Sends signal n; false when the process had already exited. */
export async function signalPlugin(ctx: ExecutorContext, p: Plugin, n: number, all: boolean): Promise<boolean> {
  const { id } = p;
  if (p.state === 'stopped') return false;
  try {
    await ctx.client.tasks.kill(id, n, { all });
    return true;
  } catch (err) {
    // containerd's NOT_FOUND on kill: the process is gone already.
    if (isNotFound(err)) return false;
    throw forPlugin(id, err);
  }
}

/**
 * SIGTERM, then SIGKILL after timeoutMs (a PID 1 gets no default signal
 * handlers: a bare `sleep` ignores SIGTERM). Resolves once the exit has
 * been reaped. It waits on the task itself too, so it does not depend
 * on the event stream.
 */
export async function stopPlugin(ctx: ExecutorContext, p: Plugin, timeoutMs: number): Promise<PluginExit> {
  const { id } = p;
  if (p.state === 'stopped' && p.exit) return p.exited;
  const abort = new AbortController();
  const waited = ctx.client.tasks.wait(id, { signal: abort.signal }).then(
    (w) => handleExit(ctx, id, { pid: p.pid, exitStatus: w.exitStatus, exitedAt: w.exitedAt ?? new Date() }),
    (err) => {
      if (isNotFound(err)) return handleExit(ctx, id, { pid: p.pid, exitStatus: UNKNOWN_EXIT_STATUS, exitedAt: new Date() });
      return undefined;
    },
  );
  void waited.catch(() => {});
  try {
    const first = timeoutMs === 0 ? SIGKILL : SIGTERM;
    await killUnlessGone(ctx, id, first);
    const timer = sleep(timeoutMs, 'timeout' as const, { ref: false });
    if ((await Promise.race([p.exited, timer])) === 'timeout') await killUnlessGone(ctx, id, SIGKILL);
    return await p.exited;
  } catch (err) {
    throw forPlugin(id, err);
  } finally {
    abort.abort();
  }
}

/**
 * Signals the task (SIGKILL: every process in it). A kill racing the exit
 * can fail in ways other than NOT_FOUND (the shim closing its connection
 * as the task is deleted), so a failed kill counts only if the task still
 * runs. A kill that met its deadline is not asked about: a containerd that
 * did not answer it would keep the question waiting as long again.
 */
async function killUnlessGone(ctx: ExecutorContext, id: string, signal: number): Promise<void> {
  try {
    await ctx.client.tasks.kill(id, signal, { all: signal === SIGKILL });
  } catch (err) {
    if (isNotFound(err)) return;
    if (isErrorCode(err, ErrorCode.DeadlineExceeded)) throw err;
    const task = await ctx.client.tasks.get(id).catch(ignoreNotFound);
    if (task && task.status !== 'stopped') throw err;
  }
}
