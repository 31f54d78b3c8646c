// Plugin output through pipes (the default): the runc shim hands the
// plugin's stdout and stderr pipes to plugind-pipe-holder (a binary:// stdout
// URI) and copies nothing; plugind reads them through the holder's fds. FIFO
// sets (`stdio: 'fifos'`, and tasks made by an earlier plugind) still work
// and are restored by an executor that makes pipes.
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { pluginPaths } from '../../src/common/paths.js';
import { pipeHolderBinary } from '../../src/keeper/index.js';
import { startContainerd, type Harness } from '../helpers/containerd.js';
import { collect, startExecutor } from '../helpers/executor.js';
import { leftoversIn, pipeHolders } from '../helpers/leftovers.js';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { cli } from '../helpers/cli.js';
import { uniqueName } from '../helpers/containerd.js';
import { alive, logText, pluginsDir, serve, stopKeeper, until } from '../helpers/serve.js';

let h: Harness;
before(async () => {
  h = await startContainerd();
});
after(async () => {
  await h?.stop();
});

describe('stdio through pipes', () => {
  test("a plugin's task names the holder; the holder holds its pipes while it runs and goes with its task", async () => {
    const rig = await startExecutor(h);
    try {
      await rig.run('p', ['sh', '-c', 'echo out; echo err >&2; exec sleep 1000']);
      const task = await rig.client.tasks.get('p');
      assert.match(task.stdout, /^binary:\/\//);
      assert.ok(task.stdout.includes(encodeURI(pipeHolderBinary())), task.stdout);
      assert.equal(task.stderr, task.stdout);
      const holders = pipeHolders(pluginPaths(rig.dataDir).pipes);
      assert.equal(holders.length, 1);
      const holder = holders[0] as { pid: number; set: string };
      assert.match(holder.set, /^p\.[0-9a-f]+$/);
      // Its fds 3 and 4 are the plugin's stdout and stderr: the same pipes.
      const plugin = task.pid;
      assert.match(readlinkSync(`/proc/${holder.pid}/fd/3`), /^pipe:/);
      assert.equal(readlinkSync(`/proc/${holder.pid}/fd/3`), readlinkSync(`/proc/${plugin}/fd/1`));
      assert.equal(readlinkSync(`/proc/${holder.pid}/fd/4`), readlinkSync(`/proc/${plugin}/fd/2`));
      await until('output read', async () => {
        const o = await collect(rig.executor.logs('p'));
        return o.stdout === 'out\n' && o.stderr === 'err\n';
      });
      await rig.executor.stop('p', 0);
      await until('the holder gone with the task', () => !alive(holder.pid));
      await rig.executor.remove('p');
      assert.deepEqual(await leftoversIn(rig.client, rig.dataDir), []);
    } finally {
      await rig.close();
    }
  });

  test('plugins made with FIFOs are restored and read by an executor that makes pipes', async () => {
    const first = await startExecutor(h, { executor: { stdio: 'fifos' } });
    const counter = 'i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); if [ $((i % 100)) = 0 ]; then sleep 0.05; fi; done; sleep 1000';
    await first.run('old', ['sh', '-c', counter]);
    const task = await first.client.tasks.get('old');
    assert.ok(task.stdout.startsWith(pluginPaths(first.dataDir).fifo), task.stdout);
    await until('writing', async () => (await collect(first.executor.logs('old'))).stdout.includes('line0\n'));
    await first.close();

    const second = await startExecutor(h, { client: h.client('x').withNamespace(first.client.namespace), dataDir: first.dataDir });
    try {
      assert.deepEqual(await second.executor.restoreAll(), { running: 1, stopped: 0, exited: 0 });
      const want = Array.from({ length: 2000 }, (_, i) => `line${i}\n`).join('');
      await until('all lines', async () => (await collect(second.executor.logs('old'))).stdout === want, 15_000);
      await second.run('new', ['sh', '-c', 'echo fresh; exec sleep 1000']);
      assert.match((await second.client.tasks.get('new')).stdout, /^binary:\/\//);
      await until('fresh', async () => (await collect(second.executor.logs('new'))).stdout === 'fresh\n');
      for (const id of ['old', 'new']) {
        await second.executor.stop(id, 0);
        await second.executor.remove(id);
      }
      assert.deepEqual(await leftoversIn(second.client, second.dataDir), []);
    } finally {
      await second.close();
    }
  });

  test('a shim killed under a plugin takes its holder with it; the plugin is told exited', async () => {
    const rig = await startExecutor(h);
    try {
      await rig.run('k', ['sleep', '1000']);
      const [holder] = pipeHolders(pluginPaths(rig.dataDir).pipes);
      assert.ok(holder);
      const shim = Number(readFileSync(`/proc/${holder.pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);
      assert.ok(shim > 1);
      process.kill(shim, 'SIGKILL');
      await until('the holder gone', () => !alive(holder.pid));
      await rig.exitOf('k');
      await rig.executor.remove('k');
      assert.deepEqual(await leftoversIn(rig.client, rig.dataDir), []);
    } finally {
      await rig.close();
    }
  });

  test('serve --stdio fifos makes FIFO sets; a --stdio that is not pipes or fifos is refused naming the flag', async () => {
    const namespace = uniqueName('fifos');
    const dataDir = join(h.dir, `serve-${namespace}`);
    const bad = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve', '--stdio', 'pipe', '--data-dir', dataDir], { encoding: 'utf8' });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /--stdio <how>.*'pipe' is invalid.*pipes, fifos/s);
    const s = await serve({ dataDir, containerdAddress: h.address, namespace, extra: ['--stdio', 'fifos'] });
    try {
      const r = cli(['run', 'f', '--rootfs', h.rootfs, '--', 'sh', '-c', 'echo via fifo; exec sleep 1000'], { address: s.address });
      assert.equal(r.code, 0, r.stderr);
      const task = await h.client('x').withNamespace(namespace).tasks.get('f');
      assert.ok(task.stdout.startsWith(pluginPaths(pluginsDir(dataDir, namespace)).fifo), task.stdout);
      await until('output', async () => (await logText(s.client, 'f')) === 'via fifo\n');
      assert.equal(cli(['rm', '-f', 'f'], { address: s.address }).code, 0);
      assert.deepEqual(await leftoversIn(h.client('x').withNamespace(namespace), pluginsDir(dataDir, namespace)), []);
    } finally {
      await s.stop();
      await stopKeeper(dataDir, namespace);
    }
  });
});
