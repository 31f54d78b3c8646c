// What the CLI says when the fault is not the plugin's: no plugind at the
// address (no socket, a dead one, one the caller may not open), a containerd
// that stopped answering under a `stop`, and a plugind that goes away under
// `logs --follow` and `events` (SIGTERM and SIGKILL). Each fails at once
// with one line naming the cause, and a non-zero exit.
import assert from 'node:assert/strict';
import { chmodSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { cli, spawnCli, type CliProcess } from '../helpers/cli.js';
import { serve, startServed, until, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;

before(async () => {
  rig = await startServed('faults');
});
after(async () => {
  await rig?.close();
});

/** One line on stderr, matching every pattern; the line goes in the test's report. */
function oneLine(t: TestContext, stderr: string, ...res: RegExp[]): void {
  t.diagnostic(stderr.trimEnd());
  assert.equal(stderr.trimEnd().split('\n').length, 1, `one line: ${stderr}`);
  for (const re of res) assert.match(stderr, re);
}

// Node starts the CLI (tsx included) in about a second here; "at once" is
// that plus the probe, well under this.
const AT_ONCE_MS = 3000;

test('no plugind at the address: ENOENT, ECONNREFUSED and EACCES are said at once, with the address', (t) => {
  const none = cli(['ls'], { address: 'unix:///nonexistent' });
  assert.notEqual(none.code, 0);
  assert.ok(none.ms < AT_ONCE_MS, `${none.ms} ms`);
  oneLine(t, none.stderr, /^plugind: cannot reach plugind at unix:\/\/\/nonexistent: /, /ENOENT/);

  // connect(2) on a path that is no listening socket: what a socket left by a killed plugind gives.
  const dead = join(rig.h.dir, 'dead.sock');
  writeFileSync(dead, '');
  const refused = cli(['ls'], { address: `unix://${dead}` });
  assert.notEqual(refused.code, 0);
  assert.ok(refused.ms < AT_ONCE_MS, `${refused.ms} ms`);
  oneLine(t, refused.stderr, new RegExp(`cannot reach plugind at unix://${dead}: `), /ECONNREFUSED/);

  // The real API socket (0600) as nobody. The harness's temp dir is 0700;
  // opened to 0711 here so that it is the socket's mode that refuses.
  assert.equal(statSync(rig.s.address.slice('unix://'.length)).mode & 0o777, 0o600);
  const dirMode = statSync(rig.h.dir).mode & 0o777;
  chmodSync(rig.h.dir, 0o711);
  try {
    const denied = cli(['ls'], { address: rig.s.address, as: 65534 });
    assert.notEqual(denied.code, 0);
    assert.ok(denied.ms < AT_ONCE_MS, `${denied.ms} ms`);
    oneLine(t, denied.stderr, new RegExp(`cannot reach plugind at ${rig.s.address}: `), /EACCES/, /--group/);
    assert.doesNotMatch(denied.stderr, /is `plugind serve` running/);
  } finally {
    chmodSync(rig.h.dir, dirMode);
  }
});

test('stop while containerd is hung: fails within its timeout and one containerd deadline, saying containerd is not answering', async (t) => {
  const c = rig.s.client;
  await c.run('hung', { rootfs: rig.h.rootfs, args: ['sleep', '1000'] });
  // SIGSTOP does not look like an exit to the supervisor (Node reports no
  // stopped children), so nothing restarts containerd under the test.
  const pid = rig.h.supervisor.pid as number;
  process.kill(pid, 'SIGSTOP');
  let r: ReturnType<typeof cli>;
  try {
    r = cli(['stop', 'hung', '--timeout', '1'], { address: rig.s.address, timeoutMs: 40_000 });
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  assert.notEqual(r.code, 0);
  t.diagnostic(`stop took ${r.ms} ms`);
  // 1 s stop timeout + the 10 s containerd deadline + starting the CLI.
  assert.ok(r.ms < 1000 + 10_000 + 2500, `${r.ms} ms`);
  oneLine(t, r.stderr, /^plugind: plugin hung: /, /containerd is not answering/);
  assert.doesNotMatch(r.stderr, /LB pick|metadata filters|remote_addr/);
  // containerd is back: the same plugin stops as usual.
  const exit = await c.stop('hung', 1);
  assert.ok([137, 143].includes(exit.exitStatus), `exit ${exit.exitStatus}`);
  await c.remove('hung');
});

/** `logs --follow` of a running plugin and `events`, both seen to be live. */
async function streams(): Promise<{ logs: CliProcess; events: CliProcess }> {
  const { s } = rig;
  const logs = spawnCli(['logs', 'ticker', '--follow'], { address: s.address });
  const events = spawnCli(['events'], { address: s.address });
  await until('logs --follow printing', () => logs.stdout().includes('tick'));
  // events is live once it has printed an exit that happened after it started.
  await until(
    'events printing an exit',
    async () => {
      await s.client.run('blip', { rootfs: rig.h.rootfs, args: ['true'], autoRemove: true }).catch(() => {});
      await new Promise((r) => setTimeout(r, 300));
      return events.stdout().includes('blip');
    },
    30_000,
  );
  return { logs, events };
}

async function wentAway(t: TestContext, p: CliProcess, address: string): Promise<void> {
  const { code } = await p.exited;
  assert.notEqual(code, 0, `exit code ${code}; stderr: ${p.stderr()}`);
  const lines = p.stderr().trimEnd().split('\n');
  t.diagnostic(p.stderr().trimEnd());
  const last = lines.at(-1) ?? '';
  assert.match(last, /^plugind: plugind went away/, p.stderr());
  assert.ok(last.includes(address), last);
  assert.equal(lines.filter((l) => l.startsWith('plugind:')).length, 1, p.stderr());
}

test('logs --follow and events: plugind going away (SIGTERM, then SIGKILL) ends them non-zero, saying so', async (t) => {
  await rig.s.client.run('ticker', { rootfs: rig.h.rootfs, args: ['sh', '-c', 'while true; do echo tick; sleep 0.2; done'] });
  const serveAgain = async (): Promise<void> => {
    rig.s = await serve({ dataDir: rig.dataDir, containerdAddress: rig.h.address, namespace: rig.namespace });
  };

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    const { logs, events } = await streams();
    const address = rig.s.address;
    await rig.s.stop(signal);
    await wentAway(t, logs, address);
    await wentAway(t, events, address);
    if (signal === 'SIGKILL') {
      // The killed plugind left its socket: nothing listens on it.
      const stale = cli(['ls'], { address });
      assert.ok(stale.ms < AT_ONCE_MS, `${stale.ms} ms`);
      oneLine(t, stale.stderr, /ECONNREFUSED/);
    }
    await serveAgain();
  }

  // A logs without --follow that reached the end still exits 0.
  const done = cli(['logs', 'ticker', '--tail', '5'], { address: rig.s.address });
  assert.equal(done.code, 0, done.stderr);
  await rig.s.client.remove('ticker', true);
});
