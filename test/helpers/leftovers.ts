// What is left of plugins in containerd and in a namespace's plugins dir
// (`fifo/`, `logs/`, Docker plugins' `run/` and `propagated/`, and anything
// mounted under it on the host): the leak check every fault scenario ends with.
import { existsSync, readdirSync } from 'node:fs';
import type { ContainerdClient } from '../../src/containerd/index.js';
import { pluginPaths } from '../../src/common/paths.js';
import { mountsUnder } from '../../src/executor/bundle-dirs.js';
import { idOfSet } from '../../src/executor/fifo.js';

/**
 * Containers and tasks in the client's namespace, FIFO sets, log dirs,
 * runtime and propagated dirs and host mounts under dir, of plugins not in
 * keep; empty when nothing leaked.
 */
export async function leftoversIn(c: ContainerdClient, dir: string, keep: Iterable<string> = []): Promise<string[]> {
  if (!existsSync(dir)) throw new Error(`${dir} does not exist: no plugin data dir to check`);
  const kept = new Set(keep);
  const found: string[] = [];
  const paths = pluginPaths(dir);
  for (const x of await c.containers.list()) if (!kept.has(x.id)) found.push(`container ${x.id}`);
  for (const t of await c.tasks.list()) if (!kept.has(t.containerId)) found.push(`task ${t.containerId} (${t.status})`);
  // Pool dirs (dot-named) hold spare FIFO sets, not plugins'.
  for (const name of readdirOr(paths.fifo)) if (!name.startsWith('.') && !kept.has(idOfSet(name))) found.push(`fifo set ${name}`);
  for (const name of readdirOr(paths.logs)) if (!kept.has(name)) found.push(`log dir ${name}`);
  for (const name of readdirOr(paths.run)) if (!kept.has(name)) found.push(`runtime dir ${name}`);
  for (const name of readdirOr(paths.propagated)) if (!kept.has(name)) found.push(`propagated dir ${name}`);
  for (const point of mountsUnder(dir)) {
    const id = point.slice(dir.length + 1).split('/')[1] ?? '';
    if (!kept.has(id)) found.push(`mount ${point}`);
  }
  return found;
}

function readdirOr(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
