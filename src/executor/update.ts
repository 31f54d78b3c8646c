// `plugind update`: new limits for a plugin. A running task's cgroup is
// changed first (Tasks.Update): if the runtime refuses (a memory limit below
// what the plugin uses, say), nothing else changes. Then the record: the
// container's spec, so that a restart runs with them, and its labels, which
// inspect and a restore read.
import { hasResources, linuxResources, mergeResources, resourcesProblem, type Resources } from '../common/resources.js';
import { packSpec, unpackSpec } from '../containerd/index.js';
import type { ExecutorContext } from './context.js';
import { forPlugin, invalidArgument } from './errors.js';
import type { Plugin } from './plugin.js';
import { resourcesToLabels } from './settings.js';
import { withResources, type OciSpec } from './spec.js';

/** Runs inside the id's queue. */
export async function updatePlugin(ctx: ExecutorContext, p: Plugin, next: Resources): Promise<void> {
  if (!hasResources(next)) throw forPlugin(p.id, invalidArgument('nothing to update: give --memory, --cpus or --pids-limit'));
  const problem = resourcesProblem(next);
  if (problem) throw forPlugin(p.id, invalidArgument(problem));
  const merged = mergeResources(p.settings.resources ?? {}, next);
  try {
    if (p.state !== 'stopped') await ctx.client.tasks.update(p.id, linuxResources(next));
    const container = await ctx.client.containers.get(p.id);
    if (container.spec) {
      const spec = unpackSpec(container.spec) as OciSpec;
      await ctx.client.containers.setSpec(p.id, packSpec(withResources(spec, next)));
    }
    // -1 said "no pids limit" to the runtime; the record keeps no limit.
    if (merged.pidsLimit === -1) delete merged.pidsLimit;
    await ctx.client.containers.setLabels(p.id, resourcesToLabels(merged));
  } catch (err) {
    throw forPlugin(p.id, err);
  }
  p.settings = { ...p.settings, ...(hasResources(merged) ? { resources: merged } : {}) };
  if (!hasResources(merged)) delete p.settings.resources;
}
