// The containerd layer against a real containerd: a plugin-shaped task from
// container to exit event, error classes from containerd's own answers, the
// event stream's edges, and the supervisor keeping containerd alive.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { constants as fsc, mkdirSync, openSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ContainerdError,
  ErrorCode,
  packRuncOptions,
  packSpec,
  taskEventFilters,
  unpackRuncOptions,
  unpackSpec,
  type ContainerdClient,
  type ContainerdEvent,
  type EventSubscription,
  type TaskExit,
} from '../../src/containerd/index.js';
import { defaultSpec } from '../../src/executor/spec.js';
import { startContainerd, type Harness } from '../helpers/containerd.js';
import { rejectsCode } from '../helpers/rejects.js';

const RUNTIME = 'io.containerd.runc.v2';

let h: Harness;
before(async () => {
  h = await startContainerd();
});
after(async () => {
  await h?.stop();
});

/** A stdout/stderr FIFO pair whose read ends are sockets on O_NONBLOCK fds. */
function fifoPair(id: string): { stdout: string; stderr: string; out: Promise<string>; err: Promise<string> } {
  const dir = join(h.dir, 'fifo', id);
  mkdirSync(dir, { recursive: true });
  const stdout = join(dir, 'stdout');
  const stderr = join(dir, 'stderr');
  execFileSync('mkfifo', ['-m', '600', stdout, stderr]);
  const read = (path: string): Promise<string> => {
    const sock = new net.Socket({ fd: openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK), readable: true, writable: false });
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    return once(sock, 'end').then(() => {
      sock.destroy();
      return Buffer.concat(chunks).toString('utf8');
    });
  };
  return { stdout, stderr, out: read(stdout), err: read(stderr) };
}

async function createPlugin(c: ContainerdClient, id: string, args: string[]): Promise<void> {
  const spec = defaultSpec({ rootfs: h.rootfs, args, namespace: c.namespace, id });
  await c.containers.create({
    id,
    labels: { 'io.plugind.test': '1' },
    runtime: { name: RUNTIME, options: packRuncOptions({}) },
    spec: packSpec(spec),
  });
}

async function nextExit(sub: EventSubscription, id: string): Promise<ContainerdEvent & { event: TaskExit }> {
  for await (const ev of sub) {
    if (ev.topic === '/tasks/exit' && ev.event.containerId === id) return ev as ContainerdEvent & { event: TaskExit };
  }
  throw new Error('event stream ended before the exit of ' + id);
}

/** rejectsCode, and the error is the containerd layer's, with the gRPC error as its cause. */
async function rejectsWith(p: Promise<unknown>, code: ErrorCode, re?: RegExp): Promise<ContainerdError> {
  const err = await rejectsCode(p, code, re);
  assert.ok(err instanceof ContainerdError, `want ContainerdError, got ${String(err)}`);
  assert.ok(err.cause, 'the gRPC error is kept as cause');
  return err;
}

describe('containerd client', () => {
  test('version and health', async () => {
    const c = h.client();
    const v = await c.version();
    assert.match(v.version, /^1\./);
    assert.equal(await c.health(), 'SERVING');
  });

  test('a task: container, FIFO output, start, exit event, delete', async () => {
    const c = h.client('life');
    const id = 'hello';
    const io = fifoPair(`${c.namespace}-${id}`);
    const sub = c.events.subscribe({ filters: taskEventFilters(c.namespace) });
    await sub.ready();
    try {
      await createPlugin(c, id, ['sh', '-c', 'echo hello out; echo hello err >&2; exit 3']);
      const got = await c.containers.get(id);
      assert.equal(got.runtime.name, RUNTIME);
      assert.deepEqual(got.labels, { 'io.plugind.test': '1' });
      assert.ok(got.spec);
      assert.deepEqual((unpackSpec(got.spec) as { process: { args: string[] } }).process.args[0], 'sh');
      assert.ok(got.runtime.options);
      assert.equal(unpackRuncOptions(got.runtime.options).root, '');
      assert.ok(got.createdAt instanceof Date);

      const created = await c.tasks.create({ containerId: id, stdout: io.stdout, stderr: io.stderr });
      assert.ok(created > 0);
      const task = await c.tasks.get(id);
      assert.equal(task.status, 'created');
      assert.equal(task.stdout, io.stdout);
      const started = await c.tasks.start(id);
      assert.equal(started, created);

      const exit = await nextExit(sub, id);
      assert.equal(exit.event.exitStatus, 3);
      assert.equal(exit.event.pid, created);
      assert.equal(exit.event.id, id, 'the init process reports id == container id');
      assert.ok(exit.event.exitedAt instanceof Date);
      assert.equal(exit.namespace, c.namespace);
      assert.ok(Math.abs(exit.timestampMs - Date.now()) < 60_000);

      assert.equal(await io.out, 'hello out\n');
      assert.equal(await io.err, 'hello err\n');
      assert.equal((await c.tasks.get(id)).status, 'stopped');
      const deleted = await c.tasks.delete(id);
      assert.equal(deleted.exitStatus, 3);
      await c.containers.delete(id);
      assert.deepEqual(await c.tasks.list(), []);
      assert.deepEqual(await c.containers.list(), []);
    } finally {
      sub.close();
    }
  });

  test('a signal exit reports 128+signal; labels update in place', async () => {
    const c = h.client('sig');
    const id = 'sleeper';
    const sub = c.events.subscribe({ filters: taskEventFilters(c.namespace) });
    await sub.ready();
    try {
      await createPlugin(c, id, ['sleep', '1000']);
      await c.tasks.create({ containerId: id });
      await c.tasks.start(id);
      assert.equal((await c.tasks.get(id)).status, 'running');
      await c.tasks.kill(id, 9);
      const exit = await nextExit(sub, id);
      assert.equal(exit.event.exitStatus, 137);
      const updated = await c.containers.setLabels(id, { 'io.plugind.exit-status': '137' });
      assert.equal(updated.labels['io.plugind.exit-status'], '137');
      assert.equal(updated.labels['io.plugind.test'], '1', 'other labels are kept');
      await c.tasks.delete(id);
      await c.containers.delete(id);
    } finally {
      sub.close();
    }
  });

  test('errors map to containerd classes from real answers', async () => {
    const c = h.client('err');
    await rejectsWith(c.containers.get('missing'), ErrorCode.NotFound, /get container missing/);
    await rejectsWith(c.tasks.get('missing'), ErrorCode.NotFound);
    await rejectsWith(c.tasks.kill('missing', 15), ErrorCode.NotFound);
    await createPlugin(c, 'twice', ['true']);
    await rejectsWith(createPlugin(c, 'twice', ['true']), ErrorCode.AlreadyExists, /create container twice/);
    await rejectsWith(createPlugin(c, 'bad/id', ['true']), ErrorCode.InvalidArgument);
    await rejectsWith(createPlugin(c, '-dash', ['true']), ErrorCode.InvalidArgument);
    // A second task for one container.
    await c.tasks.create({ containerId: 'twice' });
    await rejectsWith(c.tasks.create({ containerId: 'twice' }), ErrorCode.AlreadyExists, /create task twice/);
    // containerd 1.6 answers "cannot delete a running process" without a class.
    await c.tasks.start('twice').catch(() => {});
    await createPlugin(c, 'busy', ['sleep', '1000']);
    await c.tasks.create({ containerId: 'busy' });
    await c.tasks.start('busy');
    await rejectsWith(c.tasks.delete('busy'), ErrorCode.Unknown, /running/);
  });

  test('a payload that does not decode is reported and skipped', async () => {
    const c = h.client('decode');
    const skipped: string[] = [];
    const sub = c.events.subscribe({
      filters: taskEventFilters(c.namespace),
      onDecodeError: (_err, env) => skipped.push(`${env.topic} ${env.typeUrl}`),
    });
    await sub.ready();
    try {
      // containerd forwards what it is given: a TaskExit cut short and a wrong type.
      await c.events.publish('/tasks/exit', { typeUrl: 'containerd.events.TaskExit', value: Buffer.from([0x18]) });
      await c.events.publish('/tasks/exit', { typeUrl: 'containerd.events.TaskOOM', value: Buffer.from([]) });
      await createPlugin(c, 'after', ['true']);
      await c.tasks.create({ containerId: 'after' });
      await c.tasks.start('after');
      const exit = await nextExit(sub, 'after');
      assert.equal(exit.event.exitStatus, 0);
      assert.deepEqual(skipped, ['/tasks/exit containerd.events.TaskExit', '/tasks/exit containerd.events.TaskOOM']);
    } finally {
      sub.close();
    }
  });

  test('close() ends an iteration without error', async () => {
    const c = h.client('close');
    const sub = c.events.subscribe({ filters: taskEventFilters(c.namespace) });
    await sub.ready();
    const drained = (async () => {
      let n = 0;
      for await (const _ of sub) n += 1;
      return n;
    })();
    setTimeout(() => sub.close(), 50);
    assert.equal(await drained, 0);
  });
});

describe('embedded containerd supervisor', () => {
  test('SIGKILLed containerd: the stream reports Unavailable, the supervisor restarts it, the next call succeeds', async () => {
    const c = h.client('restart');
    const sub = c.events.subscribe({ filters: taskEventFilters(c.namespace) });
    await sub.ready();
    const ended = (async () => {
      for await (const _ of sub) {
        /* none expected */
      }
    })();
    const oldPid = h.supervisor.pid;
    assert.ok(oldPid);
    const restarted = once(h.supervisor, 'restart');
    process.kill(oldPid, 'SIGKILL');
    await assert.rejects(ended, (err: unknown) => err instanceof ContainerdError && err.code === ErrorCode.Unavailable);
    // Made while containerd is down: waits for it within the deadline.
    const v = await c.version();
    assert.match(v.version, /^1\./);
    const [info] = (await restarted) as [{ pid: number; restarts: number }];
    assert.notEqual(info.pid, oldPid);
    assert.equal(h.supervisor.pid, info.pid);
    assert.equal(await c.health(), 'SERVING');
  });
});
