// What plugins use now: one Tasks.Metrics call for every running plugin of
// this executor (a shard), filtered by id so that each task's shim is asked
// once, by the shard that owns it.
import type { TaskMetrics } from '../containerd/index.js';
import type { ExecutorContext } from './context.js';
import { notFound } from './errors.js';
import { validateId } from './ids.js';

/**
 * The usage of the given plugins, a stopped one as zeros (as docker stats
 * shows one) and an unknown id NOT_FOUND; without ids, of every running
 * plugin this executor has.
 */
export async function pluginStats(ctx: ExecutorContext, ids?: string[]): Promise<TaskMetrics[]> {
  const wanted = ids ?? [...ctx.plugins.values()].filter((p) => p.state === 'running').map((p) => p.id);
  for (const id of wanted) {
    validateId(id);
    if (!ctx.plugins.has(id)) throw notFound(id);
  }
  const running = wanted.filter((id) => ctx.plugins.get(id)?.state === 'running');
  // Ids are containerd identifiers (letters, digits, . _ -): nothing to quote in a filter.
  const got = running.length === 0 ? [] : await ctx.client.tasks.metrics(running.map((id) => `id==${id}`));
  const byId = new Map(got.map((m) => [m.id, m]));
  return wanted.map((id) => byId.get(id) ?? { id, cpuNs: 0, memoryBytes: 0, pids: 0 });
}
