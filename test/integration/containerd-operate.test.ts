// Operating running tasks against a real containerd: usage and limits
// (Tasks.Metrics) for several tasks in one call, new limits on a running task
// (Tasks.Update) and on its record (Containers.setSpec), a process exec'd into
// a task, and a task killed by the OOM killer as containerd reports it.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ErrorCode,
  OCI_LINUX_RESOURCES_TYPE_URL,
  packProcessSpec,
  packRuncOptions,
  packSpec,
  taskEventFilters,
  unpackSpec,
  type ContainerdClient,
  type ContainerdEvent,
  type EventSubscription,
  type TaskMetrics,
} from '../../src/containerd/index.js';
import { openReadEnd } from '../../src/executor/fifo.js';
import { mkfifoSync } from '../../src/executor/libc.js';
import { defaultSpec, type OciSpec } from '../../src/executor/spec.js';
import { startContainerd, type Harness } from '../helpers/containerd.js';
import { rejectsCode } from '../helpers/rejects.js';

const RUNTIME = 'io.containerd.runc.v2';
const MiB = 2 ** 20;
const SIGKILL = 9;

let h: Harness;
before(async () => {
  h = await startContainerd();
});
after(async () => {
  await h?.stop();
});

function specFor(c: ContainerdClient, id: string, args: string[], resources: Record<string, unknown> = {}): OciSpec {
  const spec = defaultSpec({ rootfs: h.rootfs, args, namespace: c.namespace, id });
  spec.linux = { ...spec.linux, resources: { ...spec.linux?.resources, ...resources } };
  return spec;
}

/** A running task of a container of the same id; returns its spec. */
async function runTask(c: ContainerdClient, id: string, args: string[], resources?: Record<string, unknown>): Promise<OciSpec> {
  const spec = specFor(c, id, args, resources);
  await c.containers.create({ id, labels: { 'io.plugind.test': '1' }, runtime: { name: RUNTIME, options: packRuncOptions({}) }, spec: packSpec(spec) });
  await c.tasks.create({ containerId: id });
  await c.tasks.start(id);
  return spec;
}

/** A stdout/stderr FIFO pair, read ends open before the shim opens the write ends. */
async function fifoPair(name: string): Promise<{ stdout: string; stderr: string; out: Promise<string>; err: Promise<string> }> {
  const dir = join(h.dir, 'fifo', name);
  mkdirSync(dir, { recursive: true });
  const stdout = join(dir, 'stdout');
  const stderr = join(dir, 'stderr');
  mkfifoSync(stdout);
  mkfifoSync(stderr);
  const read = async (path: string): Promise<string> => {
    const sock = new net.Socket({ fd: await openReadEnd(path), readable: true, writable: false });
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    await once(sock, 'end');
    sock.destroy();
    return Buffer.concat(chunks).toString('utf8');
  };
  return { stdout, stderr, out: read(stdout), err: read(stderr) };
}

/** The task's v1 cgroup file, read directly, to check what containerd reports against the kernel. */
function cgroupFile(c: ContainerdClient, id: string, controller: string, file: string): string | undefined {
  const path = `/sys/fs/cgroup/${controller}/${c.namespace}/${id}/${file}`;
  return existsSync(path) ? readFileSync(path, 'utf8').trim() : undefined;
}

function byId(ms: TaskMetrics[]): Map<string, TaskMetrics> {
  return new Map(ms.map((m) => [m.id, m]));
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const V1 = existsSync('/sys/fs/cgroup/memory/memory.limit_in_bytes');

describe('task metrics and limits', () => {
  let c: ContainerdClient;
  before(async () => {
    c = h.client('metrics');
    // A busy loop, then idle: its CPU time is well above the sleeper's.
    await runTask(c, 'limited', ['sh', '-c', 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; exec sleep 1000'], {
      memory: { limit: 64 * MiB },
      pids: { limit: 50 },
    });
    await runTask(c, 'free', ['sleep', '1000']);
    await runTask(c, 'other', ['sleep', '1000']);
  });

  test('two tasks in one call, selected by id filters; limits, pids, CPU time', { timeout: 60_000 }, async () => {
    const got = await until('the busy loop to use 20 ms of CPU', async () => {
      const ms = byId(await c.tasks.metrics(['id==limited', 'id==free']));
      return (ms.get('limited')?.cpuNs ?? 0) > 20e6 ? ms : undefined;
    });
    assert.deepEqual([...got.keys()].sort(), ['free', 'limited'], 'the filters are ORed; "other" is not selected');
    const limited = got.get('limited');
    const free = got.get('free');
    assert.ok(limited && free);
    assert.equal(limited.memoryLimitBytes, 64 * MiB);
    assert.equal(free.memoryLimitBytes, undefined, 'no limit reads as undefined');
    assert.ok(!('memoryLimitBytes' in free));
    assert.ok(limited.pids >= 1 && free.pids >= 1);
    assert.ok(free.cpuNs > 0);
    assert.ok(limited.cpuNs > free.cpuNs, `busy ${limited.cpuNs} ns vs sleeping ${free.cpuNs} ns`);
    assert.ok(limited.memoryBytes > 0 && limited.memoryBytes < 64 * MiB);
    if (V1) {
      // Nanoseconds, as the kernel counts them: the counter only grows after our read.
      const kernelNs = Number(cgroupFile(c, 'limited', 'cpuacct', 'cpuacct.usage'));
      assert.ok(kernelNs >= limited.cpuNs && kernelNs < limited.cpuNs + 1e9, `cpuacct.usage ${kernelNs} vs ${limited.cpuNs}`);
      assert.equal(cgroupFile(c, 'free', 'memory', 'memory.limit_in_bytes'), '9223372036854771712', 'what v1 says for no limit');
      assert.equal(cgroupFile(c, 'limited', 'pids', 'pids.max'), '50');
    }

    assert.deepEqual((await c.tasks.metrics(['id==limited'])).map((m) => m.id), ['limited']);
    assert.deepEqual((await c.tasks.metrics()).map((m) => m.id).sort(), ['free', 'limited', 'other'], 'no filter: every task');
    assert.deepEqual(await c.tasks.metrics(['id==missing']), []);
    assert.deepEqual(await c.tasks.metrics(['id==limited,id==free']), [], 'a comma ANDs');
    // Scoped to the caller's namespace, whatever the filter says.
    assert.deepEqual(await h.client('elsewhere').tasks.metrics(['id==limited']), []);
  });

  test('update() sets a running task\'s limits; metrics show them', { timeout: 60_000 }, async () => {
    await c.tasks.update('limited', { memory: { limit: 96 * MiB }, pids: { limit: 80 } });
    const [m] = await c.tasks.metrics(['id==limited']);
    assert.equal(m?.memoryLimitBytes, 96 * MiB);
    if (V1) assert.equal(cgroupFile(c, 'limited', 'pids', 'pids.max'), '80');
    // runc's -1: no limit.
    await c.tasks.update('limited', { memory: { limit: -1 } });
    const [none] = await c.tasks.metrics(['id==limited']);
    assert.equal(none?.memoryLimitBytes, undefined);
    await c.tasks.update('limited', { memory: { limit: 64 * MiB } });
    assert.equal((await c.tasks.metrics(['id==limited']))[0]?.memoryLimitBytes, 64 * MiB);
    assert.equal(OCI_LINUX_RESOURCES_TYPE_URL, 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources');

    await rejectsCode(c.tasks.update('missing', { memory: { limit: 64 * MiB } }), ErrorCode.NotFound);
  });

  test('setSpec() replaces the record\'s spec only; the running task keeps its limits', { timeout: 60_000 }, async () => {
    const before = await c.containers.get('free');
    assert.ok(before.spec);
    const spec = unpackSpec(before.spec) as OciSpec;
    const next = { ...spec, linux: { ...spec.linux, resources: { ...spec.linux?.resources, memory: { limit: 32 * MiB } } } };
    const updated = await c.containers.setSpec('free', packSpec(next));
    assert.ok(updated.spec);
    assert.deepEqual((unpackSpec(updated.spec) as OciSpec).linux?.resources?.memory, { limit: 32 * MiB });
    assert.deepEqual(updated.labels, before.labels, 'labels untouched');
    assert.equal(updated.runtime.name, RUNTIME);
    const got = await c.containers.get('free');
    assert.ok(got.spec);
    assert.deepEqual((unpackSpec(got.spec) as OciSpec).linux?.resources?.memory, { limit: 32 * MiB });
    assert.equal((await c.tasks.metrics(['id==free']))[0]?.memoryLimitBytes, undefined, 'a running task is not changed by its record');
  });
});

describe('exec', () => {
  test('a process in a running task: its output, its exit status, its reaping', { timeout: 60_000 }, async () => {
    const c = h.client('exec');
    const spec = await runTask(c, 'host', ['sleep', '1000']);
    const sub = c.events.subscribe({ filters: taskEventFilters(c.namespace) });
    await sub.ready();
    try {
      const io = await fifoPair('exec-sh');
      await c.tasks.exec({
        containerId: 'host',
        execId: 'sh',
        stdout: io.stdout,
        stderr: io.stderr,
        spec: packProcessSpec({ ...spec.process, args: ['sh', '-c', 'echo out; echo err >&2; exit 3'] }),
      });
      await rejectsCode(
        c.tasks.exec({ containerId: 'host', execId: 'sh', spec: packProcessSpec({ ...spec.process, args: ['true'] }) }),
        ErrorCode.AlreadyExists,
      );
      const waited = c.tasks.wait('host', { execId: 'sh' });
      const pid = await c.tasks.start('host', 'sh');
      assert.ok(pid > 0);
      const exit = await waited;
      assert.equal(exit.exitStatus, 3);
      assert.ok(exit.exitedAt instanceof Date);
      assert.equal(await io.out, 'out\n');
      assert.equal(await io.err, 'err\n');

      const ev = await nextEvent(sub, (e) => e.topic === '/tasks/exit' && e.event.id === 'sh');
      assert.ok(ev.topic === '/tasks/exit');
      assert.equal(ev.event.containerId, 'host');
      assert.equal(ev.event.pid, pid);
      assert.equal(ev.event.exitStatus, 3);

      const reaped = await c.tasks.deleteProcess('host', 'sh');
      assert.equal(reaped.exitStatus, 3);
      assert.equal(reaped.pid, pid);
      await rejectsCode(c.tasks.deleteProcess('host', 'sh'), ErrorCode.NotFound);
      assert.equal((await c.tasks.get('host')).status, 'running', 'the task lives on');

      // kill and wait name the exec'd process, not init.
      await c.tasks.exec({ containerId: 'host', execId: 'nap', spec: packProcessSpec({ ...spec.process, args: ['sleep', '1000'] }) });
      await c.tasks.start('host', 'nap');
      await c.tasks.kill('host', SIGKILL, { execId: 'nap' });
      assert.equal((await c.tasks.wait('host', { execId: 'nap' })).exitStatus, 128 + SIGKILL);
      assert.equal((await c.tasks.deleteProcess('host', 'nap')).exitStatus, 128 + SIGKILL);
      assert.equal((await c.tasks.get('host')).status, 'running');
    } finally {
      sub.close();
    }
  });
});

async function nextEvent(sub: EventSubscription, match: (e: ContainerdEvent) => boolean): Promise<ContainerdEvent> {
  for await (const ev of sub) if (match(ev)) return ev;
  throw new Error('event stream ended');
}

describe('OOM', () => {
  test('a task past its memory limit: a /tasks/oom event for it, then its exit', { timeout: 60_000 }, async () => {
    const c = h.client('oom');
    const sub = c.events.subscribe({ filters: taskEventFilters(c.namespace) });
    await sub.ready();
    try {
      // Doubles a string until the cgroup's 16 MiB are gone (the host has no swap to spill to).
      await runTask(c, 'hog', ['sh', '-c', 'x=a; while :; do x=$x$x; done'], { memory: { limit: 16 * MiB } });
      // Both events, in the order they come; an OOM event after the exit
      // is waited for a while too (the shim reports the two separately).
      const seen: Array<{ topic: string; timestampMs: number; receivedMs: number; exitStatus?: number }> = [];
      const both = (async () => {
        for await (const ev of sub) {
          if (ev.event.containerId !== 'hog') continue;
          if (ev.topic === '/tasks/oom') seen.push({ topic: ev.topic, timestampMs: ev.timestampMs, receivedMs: Date.now() });
          if (ev.topic === '/tasks/exit') seen.push({ topic: ev.topic, timestampMs: ev.timestampMs, receivedMs: Date.now(), exitStatus: ev.event.exitStatus });
          if (seen.some((e) => e.topic === '/tasks/oom') && seen.some((e) => e.topic === '/tasks/exit')) return;
        }
      })();
      await until('the exit of hog', async () => (seen.some((e) => e.topic === '/tasks/exit') ? true : undefined), 30_000);
      await Promise.race([both, new Promise((r) => setTimeout(r, 5000))]);
      const first = seen[0]!;
      process.stdout.write(`# hog: ${seen.map((e) => `${e.topic} published +${(e.timestampMs - first.timestampMs).toFixed(2)} ms, received +${e.receivedMs - first.receivedMs} ms`).join('; ')}\n`);
      const exit = seen.find((e) => e.topic === '/tasks/exit');
      assert.ok(seen.some((e) => e.topic === '/tasks/oom'), `a /tasks/oom event for hog: ${JSON.stringify(seen)}`);
      assert.equal(exit?.exitStatus, 128 + SIGKILL, 'the OOM killer sends SIGKILL');
      assert.equal(seen.filter((e) => e.topic === '/tasks/exit').length, 1);
      assert.equal((await c.tasks.delete('hog')).exitStatus, 128 + SIGKILL);
    } finally {
      sub.close();
    }
  });
});
