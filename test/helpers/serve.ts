// Runs the real `plugind serve` (the CLI, from source) as a child process
// against the harness's containerd, and talks to it through the API client.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PluginsClient, type ExitEvent, type ServerStream } from '../../src/api/client.js';
import type { ContainerdClient } from '../../src/containerd/index.js';
import { apiSocketPath, pluginsDir } from '../../src/common/paths.js';
import { keeperPaths, stopFifoKeeper } from '../../src/keeper/index.js';
import { purgeNamespace, startContainerd, uniqueName, type Harness } from './containerd.js';
import { CLI } from './cli.js';
import { leftoversIn } from './leftovers.js';

export interface Served {
  child: ChildProcess;
  pid: number;
  address: string;
  metricsUrl: string;
  client: PluginsClient;
  logs: string[];
  /** SIGTERM (graceful) or SIGKILL, and wait for the process to end. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export { pluginsDir };

/** Plugin dirs whose FIFO keeper a plugind started here may have left running (they outlive plugind by design). */
const keepers = new Set<string>();
process.once('exit', () => {
  // Synchronous at exit: the pid file, checked against the keeper's command line.
  for (const dir of keepers) {
    const { root, pidFile } = keeperPaths(dir);
    try {
      const pid = Number(readFileSync(pidFile, 'utf8'));
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(root)) process.kill(pid, 'SIGTERM');
    } catch {
      /* not running */
    }
  }
});

/** Stops the FIFO keeper of a data dir's namespace by its pid. */
export async function stopKeeper(dataDir: string, namespace: string): Promise<void> {
  const dir = pluginsDir(dataDir, namespace);
  await stopFifoKeeper(dir);
  keepers.delete(dir);
}

/** Without containerdAddress, plugind runs its embedded containerd. */
export async function serve(opts: { dataDir: string; containerdAddress?: string; namespace: string; workers?: number; extra?: string[] }): Promise<Served> {
  mkdirSync(opts.dataDir, { recursive: true });
  keepers.add(pluginsDir(opts.dataDir, opts.namespace));
  const address = `unix://${apiSocketPath(opts.dataDir)}`;
  const args = [
    '--import',
    'tsx',
    CLI,
    'serve',
    '--data-dir',
    opts.dataDir,
    ...(opts.containerdAddress ? ['--containerd-address', opts.containerdAddress] : []),
    '--namespace',
    opts.namespace,
    '--workers',
    String(opts.workers ?? 2),
    '--metrics-address',
    '127.0.0.1:0',
    ...(opts.extra ?? []),
  ];
  // As plugind is started by `npm start` and the systemd unit (README, "How it works": Memory).
  const child = spawn(process.execPath, ['--max-semi-space-size=1', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PLUGIND_TEST_HOOKS: '1' } });
  // A test file that dies early must not leave its plugind behind.
  const killChild = (): boolean => child.kill('SIGKILL');
  process.once('exit', killChild);
  child.once('exit', () => process.off('exit', killChild));
  const logs: string[] = [];
  let metrics = '';
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      logs.push(line);
      const m = /"metrics":"([^"]+)"/.exec(line);
      if (m) metrics = m[1] as string;
      if (line.includes('"msg":"plugind ready"')) resolve();
    });
    createInterface({ input: child.stderr! }).on('line', (line) => logs.push(line));
    child.once('exit', (code) => reject(new Error(`plugind serve exited (${code}) before ready:\n${logs.join('\n')}`)));
  });
  await ready;
  const client = new PluginsClient(address);
  return {
    child,
    pid: child.pid as number,
    address,
    metricsUrl: `http://${metrics}/metrics`,
    client,
    logs,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      client.close();
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill(signal);
      await exited;
    },
  };
}

export async function metricsText(url: string): Promise<string> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.text();
}

/** The value of one sample line (`name{labels} value`), or undefined. */
export function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/** The sum of a metric's samples whose labels include the given ones (over all shards, say). */
export function sumSamples(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const have = (m[2] ?? '').split(',');
    if (want.every((l) => have.includes(l))) sum += Number(m[3]);
  }
  return sum;
}

/** Polls fn until it holds; throws naming `what` after ms. */
export async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * An events stream whose exits are collected into exits, once plugind has
 * it live: every exit from here on is in exits. The stream ending with
 * plugind is not an error.
 */
export async function watchExits(c: PluginsClient, exits: ExitEvent[] = []): Promise<{ exits: ExitEvent[]; events: ServerStream<ExitEvent> }> {
  const events = c.events();
  void (async () => {
    for await (const e of events) exits.push(e);
  })().catch(() => {});
  await events.ready();
  return { exits, events };
}

export interface ServedRig {
  h: Harness;
  /** The plugind now serving; a test that restarts plugind puts the new one here. */
  s: Served;
  namespace: string;
  dataDir: string;
  /** containerd, straight, on plugind's namespace. */
  containerd: ContainerdClient;
  /** Every exit on the events stream since start. */
  exits: ExitEvent[];
  close(): Promise<void>;
}

/**
 * A private containerd, `plugind serve` on it, and its exits collected.
 * plugind's data dir is under the harness's temp dir unless dataDir says
 * where (a filesystem of the test's own, say); containerd's stays there.
 */
export async function startServed(label: string, options: { dataDir?: string } = {}): Promise<ServedRig> {
  const h = await startContainerd();
  const namespace = uniqueName(label);
  const dataDir = options.dataDir ?? join(h.dir, 'plugind');
  const s = await serve({ dataDir, containerdAddress: h.address, namespace });
  const { exits, events } = await watchExits(s.client);
  const rig: ServedRig = {
    h,
    s,
    namespace,
    dataDir,
    containerd: h.client('x').withNamespace(namespace),
    exits,
    async close() {
      events.close();
      await rig.s.stop();
      await stopKeeper(dataDir, namespace);
      await purgeNamespace(rig.containerd).catch(() => {});
      await h.stop();
    },
  };
  return rig;
}

/** What a served plugind left of plugins not in keep (see leftoversIn); empty when nothing leaked. */
export function leftovers(rig: { containerd: ContainerdClient; dataDir: string }, keep: Iterable<string> = []): Promise<string[]> {
  return leftoversIn(rig.containerd, pluginsDir(rig.dataDir, rig.containerd.namespace), keep);
}

/** A plugin's output through the API, one stream or both. */
export async function logText(c: PluginsClient, id: string, stream?: 'stdout' | 'stderr'): Promise<string> {
  let out = '';
  for await (const chunk of c.logs(id, stream ? { stream } : {})) out += chunk.data.toString();
  return out;
}

/** A loopback TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Whether a process of that pid exists (a plugin's, say, seen from the host). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A process's open fds and resident memory. */
export function usage(pid: number): { fds: number; rssMb: number } {
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  return { fds: readdirSync(`/proc/${pid}/fd`).length, rssMb: rss };
}
