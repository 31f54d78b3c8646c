// The embedded containerd's supervisor: clear errors when containerd is not
// installed, and taking over a data dir whose plugind was SIGKILLed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { ContainerdError, ContainerdSupervisor, ErrorCode, connect, packRuncOptions, packSpec } from '../../src/containerd/index.js';
import { defaultSpec } from '../../src/executor/spec.js';
import { purgeNamespace } from '../helpers/containerd.js';
import { makeBusyboxRootfs } from '../helpers/rootfs.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pd-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function containerdsFor(configPath: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0');
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (argv[argv.indexOf('--config') + 1] === configPath && argv.includes('--config')) pids.push(Number(e));
    } catch {
      /* gone */
    }
  }
  return pids;
}

test('no containerd on PATH: a clear error, nothing started', async () => {
  const dataDir = tempDir();
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    const sup = new ContainerdSupervisor({ dataDir });
    await assert.rejects(sup.start(), (err: unknown) => {
      assert.ok(err instanceof ContainerdError);
      assert.equal(err.code, ErrorCode.FailedPrecondition);
      assert.equal(err.message, 'containerd not found on PATH; install: apt-get install containerd runc');
      return true;
    });
    assert.equal(sup.pid, undefined);
  } finally {
    process.env.PATH = saved;
  }
});

test('a binary that is not there or not executable: a clear error', async () => {
  const sup = new ContainerdSupervisor({ dataDir: tempDir(), binary: '/nonexistent/containerd' });
  await assert.rejects(sup.start(), /containerd binary \/nonexistent\/containerd is not executable; install: apt-get install containerd runc/);
});

test('a data dir too long for a unix socket is refused up front', () => {
  assert.throws(() => new ContainerdSupervisor({ dataDir: '/tmp/' + 'x'.repeat(100) }), /too long/);
});

test('containerd left by a SIGKILLed plugind is replaced, never doubled; its plugin keeps running', async () => {
  const dataDir = tempDir();
  const child = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, '../helpers/supervise-child.ts'), dataDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const oldPid = Number(line.split(' ')[1]);
  assert.ok(oldPid > 0);

  // A plugin started through the old containerd.
  const address = `unix://${join(dataDir, 'containerd/containerd.sock')}`;
  const rootfs = makeBusyboxRootfs(join(dataDir, 'rootfs'));
  const old = connect({ address, namespace: 'leftover' });
  await old.containers.create({
    id: 'survivor',
    runtime: { name: 'io.containerd.runc.v2', options: packRuncOptions({}) },
    spec: packSpec(defaultSpec({ rootfs, args: ['sleep', '1000'], namespace: 'leftover', id: 'survivor' })),
  });
  await old.tasks.create({ containerId: 'survivor' });
  const taskPid = await old.tasks.start('survivor');
  old.close();

  child.kill('SIGKILL');
  await once(child, 'exit');
  const configPath = join(dataDir, 'containerd/config.toml');
  assert.deepEqual(containerdsFor(configPath), [oldPid], 'the old containerd outlived its plugind');

  const sup = new ContainerdSupervisor({ dataDir });
  try {
    await sup.start();
    assert.ok(sup.pid && sup.pid !== oldPid);
    assert.deepEqual(containerdsFor(configPath), [sup.pid], 'exactly one containerd on this root');
    const c = connect({ address: sup.address, namespace: 'leftover' });
    const task = await c.tasks.get('survivor');
    assert.equal(task.status, 'running');
    assert.equal(task.pid, taskPid);
    await purgeNamespace(c);
    c.close();
  } finally {
    await sup.stop();
  }
  assert.deepEqual(containerdsFor(configPath), []);
});
