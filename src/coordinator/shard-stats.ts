// Plugins' usage gathered from the shards that own them: one stats request,
// so one Tasks.Metrics call, per shard concerned.
import type { TaskMetrics } from '../containerd/index.js';
import { validateId } from '../executor/index.js';
import type { Shard } from './shard.js';

/**
 * Of these plugins, in this order (a stopped one as zeros, an unknown one
 * NOT_FOUND), or without ids of every running plugin, by id.
 */
export async function shardStats(shards: readonly Shard[], shardOf: (id: string) => number, ids?: string[]): Promise<TaskMetrics[]> {
  if (!ids || ids.length === 0) {
    const all = await Promise.all(shards.map((s) => s.request({ kind: 'stats' })));
    return all.flat().sort((a, b) => a.id.localeCompare(b.id));
  }
  const unique = [...new Set(ids)];
  const byShard = new Map<number, string[]>();
  for (const id of unique) {
    validateId(id);
    const n = shardOf(id);
    byShard.set(n, [...(byShard.get(n) ?? []), id]);
  }
  const got = await Promise.all([...byShard].map(([n, own]) => (shards[n] as Shard).request({ kind: 'stats', ids: own })));
  const byId = new Map(got.flat().map((m) => [m.id, m]));
  return unique.map((id) => byId.get(id) as TaskMetrics);
}
