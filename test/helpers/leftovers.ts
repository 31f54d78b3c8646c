// What is left of plugins in containerd and in a namespace's plugins dir
// (`pipes/`, `fifo/`, `logs/`, Docker plugins' `run/` and `propagated/`,
// anything mounted under it on the host, and pipe holders still running for
// it): the leak check every fault scenario ends with.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
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
  for (const name of readdirOr(paths.pipes)) if (!kept.has(idOfSet(name))) found.push(`pipe set ${name}`);
  // A holder lives as long as its shim, which containerd shuts down a
  // second or so after a failed task create.
  let holders = strayHolders(paths.pipes, kept);
  for (const end = Date.now() + 5000; holders.length > 0 && Date.now() < end; holders = strayHolders(paths.pipes, kept)) await sleep(50);
  found.push(...holders);
  for (const name of readdirOr(paths.logs)) if (!kept.has(name)) found.push(`log dir ${name}`);
  for (const name of readdirOr(paths.run)) if (!kept.has(name)) found.push(`runtime dir ${name}`);
  for (const name of readdirOr(paths.propagated)) if (!kept.has(name)) found.push(`propagated dir ${name}`);
  for (const point of mountsUnder(dir)) {
    const id = point.slice(dir.length + 1).split('/')[1] ?? '';
    if (!kept.has(id)) found.push(`mount ${point}`);
  }
  return found;
}

/** Running pipe holders whose pid link is in root (`pidlink <root>/<set>` on their command line). */
export function pipeHolders(root: string): Array<{ pid: number; set: string }> {
  const found: Array<{ pid: number; set: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (!argv[0]?.endsWith('/plugind-pipe-holder')) continue;
    const link = argv[argv.indexOf('pidlink') + 1] ?? '';
    if (link.startsWith(`${root}/`)) found.push({ pid: Number(entry), set: link.slice(root.length + 1) });
  }
  return found;
}

function strayHolders(root: string, kept: Set<string>): string[] {
  return pipeHolders(root)
    .filter((h) => !kept.has(idOfSet(h.set)))
    .map((h) => `pipe holder ${h.pid} of ${h.set}`);
}

function readdirOr(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
