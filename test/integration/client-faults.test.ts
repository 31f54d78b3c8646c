// What the CLI says when the fault is not the plugin's: a containerd that
// stopped answering under a `stop`. It fails with one line naming the cause,
// and a non-zero exit.
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import { cli, startServed, type ServedRig } from '../helpers/serve.js';

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

test('stop while containerd is hung: fails within its timeout and one containerd deadline, saying containerd is not answering', async (t) => {
  const c = rig.s.client;
  await c.run('hung', { rootfs: rig.h.rootfs, args: ['sleep', '1000'] });
  // SIGSTOP does not look like an exit to the supervisor (Node reports no
  // stopped children), so nothing restarts containerd under the test.
  const pid = rig.h.supervisor.pid as number;
  process.kill(pid, 'SIGSTOP');
  let r: ReturnType<typeof cli>;
  try {
    r = cli(rig.s.address, ['stop', 'hung', '--timeout', '1'], { timeoutMs: 40_000 });
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
