// The executor against a real containerd: moby's plugin lifecycle, stale ids,
// cleanup on failure, restore, exits exactly once, stop/remove, plugin logs.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { packRuncOptions, packSpec, type ContainerdEvent } from '../../src/containerd/index.js';
import { ErrorCode, Executor, LABEL, PluginError, defaultSpec, parseRecords } from '../../src/executor/index.js';
import { startContainerd, type Harness } from '../helpers/containerd.js';
import { collect, startExecutor } from '../helpers/executor.js';
import { leftoversIn } from '../helpers/leftovers.js';
import { criContent } from '../helpers/log-lines.js';
import { rejectsCode } from '../helpers/rejects.js';
import { alive, until } from '../helpers/serve.js';

let h: Harness;
before(async () => {
  h = await startContainerd();
});
after(async () => {
  await h?.stop();
});

describe('executor', () => {
  test('create → running → exit: logs kept, exit recorded on the container, reported once', async () => {
    const r = await startExecutor(h);
    try {
      const { pid } = await r.run('p1', ['sh', '-c', 'echo to-out; echo to-err >&2; exit 7']);
      assert.ok(pid > 0);
      const exit = await r.exitOf('p1');
      assert.equal(exit.exitStatus, 7);
      assert.equal(exit.pid, pid);
      assert.ok(exit.eventTimestampMs, 'reported from the event stream');
      const st = r.executor.status('p1');
      assert.equal(st.state, 'stopped');
      assert.equal(st.exitStatus, 7);
      assert.deepEqual(await collect(r.executor.logs('p1')), { stdout: 'to-out\n', stderr: 'to-err\n' });
      const ctr = await r.client.containers.get('p1');
      assert.equal(ctr.labels[LABEL.exitStatus], '7');
      assert.equal(ctr.labels[LABEL.managed], '1');
      // Task deleted and FIFOs gone at exit; the container and logs stay until rm.
      assert.deepEqual(await leftoversIn(r.client, r.dataDir), ['container p1', 'log dir p1']);
      // A while for a second report to show: the point is that none comes.
      await sleep(200);
      assert.equal(r.exits.filter((e) => e.id === 'p1').length, 1);
    } finally {
      await r.close();
    }
  });

  test('an exit event delivered twice is handled once', async () => {
    const r = await startExecutor(h);
    const seen: ContainerdEvent[] = [];
    const sub = r.client.events.subscribe({ filters: [`namespace==${r.client.namespace},topic=="/tasks/exit"`] });
    await sub.ready();
    try {
      await r.run('dup', ['true']);
      for await (const ev of sub) {
        seen.push(ev);
        break;
      }
      await r.exitOf('dup');
      // containerd may repeat an exit (shim reconnects); feed the real event in again.
      r.executor.handleEvent(seen[0] as ContainerdEvent);
      r.executor.handleEvent(seen[0] as ContainerdEvent);
      await r.executor.settled('dup');
      assert.equal(r.exits.filter((e) => e.id === 'dup').length, 1);
    } finally {
      sub.close();
      await r.close();
    }
  });

  test('remove called right after an exit is fed in finds the plugin stopped, not running', async () => {
    // No event loop of the rig's: this test feeds the exit itself, then removes in the same turn.
    const client = h.client('ex-rm');
    const executor = new Executor({ client, dataDir: `${h.dir}/data-ex-rm` });
    const sub = client.events.subscribe({ filters: [`namespace==${client.namespace},topic=="/tasks/exit"`] });
    await sub.ready();
    try {
      await executor.create('gone', defaultSpec({ rootfs: h.rootfs, args: ['true'], namespace: client.namespace, id: 'gone' }));
      let exit: ContainerdEvent | undefined;
      for await (const ev of sub) {
        exit = ev;
        break;
      }
      executor.handleEvent(exit as ContainerdEvent);
      await executor.remove('gone');
      assert.throws(() => executor.status('gone'), (e: PluginError) => e.code === ErrorCode.NotFound);
      assert.deepEqual(await leftoversIn(client, `${h.dir}/data-ex-rm`), []);
    } finally {
      sub.close();
      await executor.close();
    }
  });

  test('stale ids are replaced; a running one is ALREADY_EXISTS; concurrent creates: one wins', async () => {
    const r = await startExecutor(h);
    try {
      const c = r.client;
      const spec = (id: string, args: string[]): ReturnType<typeof packSpec> =>
        packSpec(defaultSpec({ rootfs: h.rootfs, args, namespace: c.namespace, id }));
      // Left by someone else: a container with a created (never started) task…
      await c.containers.create({ id: 'stale-created', runtime: { name: 'io.containerd.runc.v2', options: packRuncOptions({}) }, spec: spec('stale-created', ['sleep', '1000']) });
      await c.tasks.create({ containerId: 'stale-created' });
      // …one whose task ran and stopped but was never deleted…
      await c.containers.create({ id: 'stale-stopped', runtime: { name: 'io.containerd.runc.v2' }, spec: spec('stale-stopped', ['true']) });
      await c.tasks.create({ containerId: 'stale-stopped' });
      await c.tasks.start('stale-stopped');
      await c.tasks.wait('stale-stopped', { timeoutMs: 10_000 });
      // …and one with no task at all.
      await c.containers.create({ id: 'stale-bare', runtime: { name: 'io.containerd.runc.v2' }, spec: spec('stale-bare', ['true']) });
      for (const id of ['stale-created', 'stale-stopped', 'stale-bare']) {
        await r.run(id, ['sh', '-c', 'echo fresh']);
        assert.equal((await r.exitOf(id)).exitStatus, 0, id);
        assert.equal((await collect(r.executor.logs(id))).stdout, 'fresh\n');
      }
      // A running one.
      await c.containers.create({ id: 'busy', runtime: { name: 'io.containerd.runc.v2' }, spec: spec('busy', ['sleep', '1000']) });
      await c.tasks.create({ containerId: 'busy' });
      await c.tasks.start('busy');
      await rejectsCode(r.run('busy', ['true']), ErrorCode.AlreadyExists, /plugin busy is already running/);
      assert.equal((await c.tasks.get('busy')).status, 'running', 'left alone');

      const results = await Promise.allSettled(Array.from({ length: 8 }, () => r.run('race', ['sleep', '1000'])));
      const won = results.filter((x) => x.status === 'fulfilled');
      const lost = results.filter((x): x is PromiseRejectedResult => x.status === 'rejected');
      assert.equal(won.length, 1);
      for (const l of lost) assert.equal((l.reason as PluginError).code, ErrorCode.AlreadyExists);
      // A stopped plugin we know of is the user's: replaced only when asked.
      await r.executor.stop('race', 0);
      await rejectsCode(r.run('race', ['true']), ErrorCode.AlreadyExists, /plugin race exists \(stopped\); remove it first/);
      const { pid } = await r.executor.create('race', defaultSpec({ rootfs: h.rootfs, args: ['true'], namespace: c.namespace, id: 'race' }), {}, { replace: true });
      assert.ok(pid > 0);
    } finally {
      await r.close();
    }
  });

  test('a failed create leaves nothing behind and names the cause', async () => {
    const r = await startExecutor(h);
    try {
      await rejectsCode(r.run('nocmd', ['/no/such/command']), ErrorCode.Unknown, /plugin nocmd: .*no\/such\/command/);
      const badCwd = defaultSpec({ rootfs: h.rootfs, args: ['true'], cwd: 'relative/dir' });
      await assert.rejects(r.executor.create('badcwd', badCwd), /plugin badcwd: .*cwd/);
      await rejectsCode(
        r.executor.create('norootfs', defaultSpec({ rootfs: '/nonexistent/rootfs', args: ['true'] })),
        ErrorCode.InvalidArgument,
        /rootfs \/nonexistent\/rootfs does not exist/,
      );
      await rejectsCode(
        r.executor.create('filerootfs', defaultSpec({ rootfs: '/bin/busybox', args: ['true'] })),
        ErrorCode.InvalidArgument,
        /is not a directory/,
      );
      await rejectsCode(r.run('bad/id', ['true']), ErrorCode.InvalidArgument, /plugin id "bad\/id" is invalid/);
      await rejectsCode(r.run('x'.repeat(77), ['true']), ErrorCode.InvalidArgument, /longer than 76/);
      await rejectsCode(r.run('okid', ['true'], { log: { maxFiles: 0 } }), ErrorCode.InvalidArgument, /log max files/);
      assert.deepEqual(await leftoversIn(r.client, r.dataDir), []);
      assert.deepEqual(r.executor.list(), []);
    } finally {
      await r.close();
    }
  });

  test('signal, stop (escalating to SIGKILL), remove', async () => {
    const r = await startExecutor(h);
    try {
      await r.run('trapper', ['sh', '-c', "trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done"]);
      await r.run('stubborn', ['sleep', '1000']);
      await rejectsCode(r.executor.signal('trapper', 'NOPE'), ErrorCode.InvalidArgument, /unknown signal "NOPE"/);
      await rejectsCode(r.executor.signal('nobody', 'TERM'), ErrorCode.NotFound, /plugin nobody: not found/);
      await rejectsCode(() => r.executor.stop('trapper', -1), ErrorCode.InvalidArgument, /stop timeout/);
      await rejectsCode(r.executor.remove('trapper'), ErrorCode.FailedPrecondition, /is running/);

      assert.equal((await r.executor.stop('trapper', 10_000)).exitStatus, 0);
      assert.equal((await collect(r.executor.logs('trapper'))).stdout, 'got-term\n');
      // PID 1 without a handler ignores SIGTERM: stop must escalate.
      assert.equal((await r.executor.stop('stubborn', 300)).exitStatus, 137);
      assert.equal(await r.executor.signal('stubborn', 'KILL'), false, 'already exited');
      assert.equal(r.exits.filter((e) => e.id === 'stubborn').length, 1);

      await r.run('forced', ['sleep', '1000']);
      assert.equal(await r.executor.signal('forced', 'SIGCONT'), true);
      await r.executor.remove('forced', { force: true });
      await r.executor.remove('trapper');
      await r.executor.remove('stubborn');
      await rejectsCode(async () => r.executor.status('forced'), ErrorCode.NotFound);
      assert.deepEqual(await leftoversIn(r.client, r.dataDir), []);
    } finally {
      await r.close();
    }
  });

  test('autoRemove deletes container and logs at exit', async () => {
    const r = await startExecutor(h);
    try {
      await r.run('once', ['sh', '-c', 'echo bye; exit 3'], { autoRemove: true });
      assert.equal((await r.exitOf('once')).exitStatus, 3);
      assert.deepEqual(await leftoversIn(r.client, r.dataDir), []);
      assert.deepEqual(r.executor.list(), []);
    } finally {
      await r.close();
    }
  });

  test('restore: a new executor re-attaches running plugins and reads what they wrote meanwhile; exits found', async () => {
    const first = await startExecutor(h);
    // Numbered lines, fast enough to fill part of the pipe while nobody reads.
    const counter = "i=0; while [ $i -lt 4000 ]; do echo line$i; i=$((i+1)); if [ $((i % 100)) = 0 ]; then sleep 0.05; fi; done; sleep 1000";
    await first.run('writer', ['sh', '-c', counter]);
    const quitter = await first.run('quitter', ['sh', '-c', 'sleep 0.3; echo last words; exit 4']);
    await first.run('idle', ['sleep', '1000']);
    await until('the writer writing', async () => (await collect(first.executor.logs('writer', { stream: 'stdout' }))).stdout.includes('line0\n'));
    // plugind goes away: copy loops closed, plugins untouched.
    await first.close();
    await until('quitter exited with nobody reading', () => !alive(quitter.pid));

    const second = await startExecutor(h, { client: h.client('x').withNamespace(first.client.namespace), dataDir: first.dataDir });
    try {
      const counts = await second.executor.restoreAll();
      assert.deepEqual(counts, { running: 2, stopped: 0, exited: 1 });
      const q = await second.exitOf('quitter');
      assert.equal(q.exitStatus, 4);
      assert.equal((await collect(second.executor.logs('quitter'))).stdout, 'last words\n', 'bytes left in the pipe are read');
      assert.equal(second.executor.status('writer').state, 'running');
      // Wait until the writer is done, then check for gaps.
      const want = Array.from({ length: 4000 }, (_, i) => `line${i}\n`).join('');
      await until('the writer done', async () => (await collect(second.executor.logs('writer', { stream: 'stdout' }))).stdout.length >= want.length, 10_000).catch(() => {});
      assert.equal((await collect(second.executor.logs('writer', { stream: 'stdout' }))).stdout, want);
      await second.executor.stop('writer', 0);
      await second.executor.stop('idle', 0);
      // restoreAll again (a reconcile) changes nothing and reports nothing new.
      const again = await second.executor.restoreAll();
      assert.deepEqual(again, { running: 0, stopped: 3, exited: 0 });
      assert.equal(second.exits.length, 3);
    } finally {
      await second.close();
    }
  });

  test('restore of an exit told and recorded but not reaped: not told again, task and FIFOs gone, logs kept', async () => {
    const first = await startExecutor(h);
    await first.run('told', ['sh', '-c', 'sleep 0.3; echo bye; exit 4']);
    const { pid } = first.executor.status('told');
    await first.close();
    // The state a plugind killed between recording the exit and deleting
    // the task leaves: the task stopped, the exit in its labels.
    const c = first.client;
    await c.tasks.wait('told');
    await c.containers.setLabels('told', { [LABEL.exitStatus]: '4', [LABEL.exitPid]: String(pid), [LABEL.exitedAt]: new Date().toISOString() });
    const second = await startExecutor(h, { client: h.client('x').withNamespace(c.namespace), dataDir: first.dataDir });
    try {
      assert.deepEqual(await second.executor.restoreAll(), { running: 0, stopped: 1, exited: 0 });
      assert.equal(second.executor.status('told').exitStatus, 4);
      assert.equal((await collect(second.executor.logs('told'))).stdout, 'bye\n');
      assert.deepEqual(await leftoversIn(c, first.dataDir), ['container told', 'log dir told']);
      // A while for a second report to show: the point is that none comes.
      await sleep(200);
      assert.deepEqual(second.exits, [], 'not told again');
      await second.executor.remove('told');
    } finally {
      await second.close();
    }
  });

  test('a task created after restore reported its plugin exited (a create cut short) is deleted', async () => {
    const r = await startExecutor(h);
    try {
      // What a worker that died inside task create leaves: the container,
      // and a task create that containerd finishes only after the restore.
      const spec = defaultSpec({ rootfs: h.rootfs, args: ['sleep', '1000'], namespace: r.client.namespace, id: 'late' });
      await r.client.containers.create({ id: 'late', labels: { [LABEL.managed]: '1' }, runtime: { name: 'io.containerd.runc.v2' }, spec: packSpec(spec) });
      assert.deepEqual(await r.executor.restoreAll(), { running: 0, stopped: 0, exited: 1 });
      assert.equal((await r.exitOf('late')).exitStatus, 255);
      await r.client.tasks.create({ containerId: 'late' });
      assert.deepEqual((await r.client.tasks.list()).map((t) => t.status), ['created']);
      await until('the late task deleted', async () => (await r.client.tasks.list()).length === 0, 10_000).catch(() => {});
      assert.deepEqual(await r.client.tasks.list(), [], 'the late task is deleted');
      assert.equal(r.executor.status('late').state, 'stopped');
      assert.equal(r.executor.status('late').exitStatus, 255);
      assert.equal(r.exits.length, 1, 'reported once');
      await r.executor.remove('late');
      // This executor never made a FIFO or a log file: containerd is all there is to check.
      assert.deepEqual(await r.client.containers.list(), []);
    } finally {
      await r.close();
    }
  });

  test('logs: tail, follow until exit, rotation keeps order', async () => {
    const r = await startExecutor(h);
    try {
      await r.run('follow', ['sh', '-c', 'for i in 1 2 3 4 5; do echo tick$i; sleep 0.1; done']);
      const followed = await collect(r.executor.logs('follow', { stream: 'stdout', follow: true }));
      assert.equal(followed.stdout, 'tick1\ntick2\ntick3\ntick4\ntick5\n');
      assert.equal((await collect(r.executor.logs('follow', { tail: 6 }))).stdout, 'tick5\n');

      // 40 000 lines of 9 bytes (352 KiB) into 64 KiB files, 3 kept.
      const gen = 'i=10000000; while [ $i -lt 10040000 ]; do echo $i; i=$((i+1)); done';
      await r.run('rot', ['sh', '-c', gen], { log: { maxSize: 64 << 10, maxFiles: 3 } });
      await r.exitOf('rot');
      const dir = join(r.dataDir, 'logs', 'rot');
      assert.deepEqual(readdirSync(dir).sort(), ['plugin.log', 'plugin.log.1', 'plugin.log.2']);
      // Files rotate between records, each at most the limit, and each parses on its own.
      for (const f of ['plugin.log.1', 'plugin.log.2']) {
        const data = readFileSync(join(dir, f));
        // Filled with whole records up to the limit; the record that would pass it starts the next file.
        assert.ok(data.length <= 64 << 10 && data.length > (64 << 10) - 100, `${f}: ${data.length} bytes`);
        const { records, rest } = parseRecords(data);
        assert.equal(rest.length, 0, `${f} ends with a whole record`);
        assert.equal(records.length, data.toString().split('\n').length - 1, `${f}: every line a record`);
      }
      const text = (await collect(r.executor.logs('rot', { stream: 'stdout' }))).stdout;
      // The oldest kept file may start with the rest of a line begun in one dropped.
      const lines = text.trimEnd().split('\n').slice(1).map(Number);
      assert.equal(lines.at(-1), 10039999);
      lines.forEach((n, i) => i > 0 && assert.equal(n, (lines[i - 1] as number) + 1));
      await rejectsCode(async () => r.executor.logs('rot', { tail: -1 }), ErrorCode.InvalidArgument);
    } finally {
      await r.close();
    }
  });

  test('non-blocking log mode drops what does not fit and counts it exactly', async () => {
    let dropped = 0;
    const r = await startExecutor(h, { executor: { onDropped: (_s, n) => (dropped += n) } });
    try {
      const total = 32 << 20;
      await r.run('flood', ['head', '-c', String(total), '/dev/zero'], { log: { mode: 'non-blocking', bufferSize: 4096 } });
      await r.exitOf('flood');
      const kept = criContent(join(r.dataDir, 'logs', 'flood'), 'stdout');
      assert.equal(kept.length + dropped, total);
      assert.ok(dropped > 0, 'a 4 KiB buffer cannot keep up with 32 MiB');
      assert.ok(kept.every((b) => b === 0));
    } finally {
      await r.close();
    }
  });
});
