// Test harness: a private containerd (own root, state, sockets and config in a
// temp dir, CRI off) started through plugind's own supervisor and stopped by
// its pid. Each test takes a namespace of its own; whatever a test leaves in
// it is killed and deleted before containerd stops, so no shim outlives the
// run. containerd's log is printed only when a test in the file failed.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerdClient, ContainerdSupervisor, connect } from '../../src/containerd/index.js';
import { makeBusyboxRootfs } from './rootfs.js';

export interface Harness {
  dir: string;
  supervisor: ContainerdSupervisor;
  address: string;
  rootfs: string;
  /** A client on a namespace no other test uses. */
  client(label?: string): ContainerdClient;
  stop(): Promise<void>;
}

let seq = 0;

export function uniqueName(label = 't'): string {
  seq += 1;
  return `${label}-${process.pid}-${seq}`;
}

export async function startContainerd(options: { rootfs?: boolean } = {}): Promise<Harness> {
  // /tmp keeps the socket path well under the 107-byte limit.
  const dir = mkdtempSync(join(tmpdir(), 'pd-'));
  const supervisor = new ContainerdSupervisor({ dataDir: dir, restartBackoff: { initialMs: 50, maxMs: 1000 } });
  try {
    await supervisor.start();
  } catch (err) {
    dumpLog(supervisor.logPath);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const rootfs = options.rootfs === false ? '' : makeBusyboxRootfs(join(dir, 'rootfs'));
  const clients: ContainerdClient[] = [];
  let stopped = false;
  let logCopy = '';
  process.once('exit', (code) => {
    // A test file that dies early must not leave its containerd behind.
    const pid = supervisor.pid;
    if (pid) process.kill(pid, 'SIGKILL');
    if (code !== 0 || process.exitCode) process.stderr.write(`\n--- containerd log (${dir}) ---\n${logCopy}\n`);
  });
  return {
    dir,
    supervisor,
    address: supervisor.address,
    rootfs,
    client(label = 't') {
      const c = connect({ address: supervisor.address, namespace: uniqueName(label) });
      clients.push(c);
      return c;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients) {
        await purgeNamespace(c).catch((err: Error) => process.stderr.write(`purge ${c.namespace}: ${err.message}\n`));
        c.close();
      }
      await supervisor.stop();
      killStrays(supervisor.socketPath);
      logCopy = readLog(supervisor.logPath);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Kills and deletes every task and container in the client's namespace. */
export async function purgeNamespace(c: ContainerdClient): Promise<void> {
  for (const t of await c.tasks.list()) {
    await c.tasks.kill(t.containerId, 9, { all: true }).catch(() => {});
    // A kill is asynchronous: wait for the exit before deleting.
    await c.tasks.wait(t.containerId, { timeoutMs: 5000 }).catch(() => {});
    await c.tasks.delete(t.containerId).catch(() => {});
  }
  for (const ctr of await c.containers.list()) await c.containers.delete(ctr.id).catch(() => {});
}

function readLog(path: string): string {
  try {
    return readFileSync(path, 'utf8').slice(-20_000);
  } catch {
    return '(no log)';
  }
}

function dumpLog(path: string): void {
  process.stderr.write(`--- containerd log ---\n${readLog(path)}\n`);
}

/**
 * Processes our containerd left that no API call could reach any more:
 * shims serving its socket, and container processes (a `runc init` of a
 * task created but never started, say) in a cgroup of one of this test
 * process's namespaces. Killed by pid.
 */
export function killStrays(socketPath: string): void {
  const mine = new RegExp(`/[A-Za-z0-9.]+-${process.pid}-\\d+/`);
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const shim = cmdline.some((a) => a.endsWith('containerd-shim-runc-v2')) && cmdline.includes(socketPath);
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (shim || mine.test(cgroup)) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone, or not ours to read */
    }
  }
}
