// Health checks through the real CLI and service on a real containerd: a
// command run in the container (exec) on each interval, healthy and
// unhealthy as docker says them, an unhealthy plugin killed and left to its
// restart policy, a check that overruns its timeout killed, bad flags
// refused with nothing created.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PluginsClient } from '../../src/api/client.js';
import { ErrorCode } from '../../src/common/errors.js';
import { pluginsDir } from '../../src/common/paths.js';
import { cli } from '../helpers/cli.js';
import { rejectsCode } from '../helpers/rejects.js';
import { leftovers, metricsText, sample, startServed, until, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;

before(async () => {
  rig = await startServed('health');
});

after(async () => {
  await rig?.close();
});

const run = (args: string[]): ReturnType<typeof cli> => cli(args, { address: rig.s.address });

interface Inspected {
  state: string;
  restartCount: number;
  health?: { status: string; failingStreak: number; log: Array<{ start: string; end: string; exitCode: number; output: string }> };
  healthCheck?: Record<string, unknown>;
}
function inspect(id: string): Inspected {
  const r = run(['inspect', id, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Inspected;
}
const execDirEntries = (): string[] => {
  const dir = join(pluginsDir(rig.dataDir, rig.namespace), 'exec');
  return existsSync(dir) ? readdirSync(dir) : [];
};
// Its own /dev/shm (a tmpfs of each container): what one plugin writes there no other sees.
const FAST = ['--health-interval', '200ms', '--health-retries', '2'];

test('--health-cmd: starting (failures in the start period not counted), then healthy once a check passes; inspect has the check and its log, ls says "running (healthy)"', async () => {
  const r = run(['run', 'fine', '--rootfs', rig.h.rootfs, '--health-cmd', 'test -e /dev/shm/up && echo ok', ...FAST, '--health-start-period', '60s', '--', 'sh', '-c', 'sleep 3; touch /dev/shm/up; exec sleep 1000']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(inspect('fine').health?.status, 'starting');
  await until('healthy', () => inspect('fine').health?.status === 'healthy', 15_000);
  const p = inspect('fine');
  assert.deepEqual(p.healthCheck, { cmd: 'test -e /dev/shm/up && echo ok', intervalSeconds: 0.2, timeoutSeconds: 30, retries: 2, startPeriodSeconds: 60 });
  const last = p.health?.log.at(-1);
  assert.equal(last?.exitCode, 0);
  assert.equal(last?.output, 'ok\n');
  assert.ok(Date.parse(last?.end ?? '') >= Date.parse(last?.start ?? ''));
  assert.ok((p.health?.log.length ?? 0) <= 5);
  assert.match(run(['ls']).stdout, /^fine\s+running \(healthy\)\s/m);
  assert.equal(p.state, 'running', 'the failures of its first 3 s, in its start period, did not count');
  assert.equal(p.health?.failingStreak, 0);
  assert.equal(run(['rm', '--force', 'fine']).code, 0);
});

test('unhealthy for --health-retries checks in a row: killed, and its restart policy runs it again (on-failure:1), then it stays stopped; counted and said', async () => {
  const r = run(['run', 'sick', '--rootfs', rig.h.rootfs, '--restart', 'on-failure:1', '--health-cmd', 'echo sick; exit 3', ...FAST, '--', 'sleep', '1000']);
  assert.equal(r.code, 0, r.stderr);
  await until('killed twice: once, and once after its restart', () => rig.exits.filter((e) => e.id === 'sick').length === 2, 20_000);
  await until('stopped', () => inspect('sick').state === 'stopped', 10_000);
  const p = inspect('sick');
  assert.equal(p.restartCount, 1);
  assert.equal(p.health?.status, 'unhealthy');
  assert.equal(p.health?.failingStreak, 2);
  assert.deepEqual(p.health?.log.map((x) => [x.exitCode, x.output]), [[1, 'sick\n'], [1, 'sick\n']]);
  assert.ok(rig.exits.filter((e) => e.id === 'sick').every((e) => e.exitStatus === 137), 'SIGKILL');
  assert.match(run(['ls']).stdout, /^sick\s+stopped\s/m);
  const m = await metricsText(rig.s.metricsUrl);
  assert.equal(sample(m, 'plugind_plugins_unhealthy'), 1);
  assert.equal(sample(m, 'plugind_unhealthy_kills_total'), 2);
  assert.equal(rig.s.logs.filter((l) => /plugin unhealthy: 2 failed health checks in a row/.test(l) && l.includes('"plugin":"sick"')).length, 2);
  assert.equal(run(['rm', 'sick']).code, 0);
  assert.equal(sample(await metricsText(rig.s.metricsUrl), 'plugind_plugins_unhealthy'), 0, 'gone with the plugin');
});

test('a check that overruns --health-timeout fails (exit -1) and its process is killed; --health-start-period keeps early failures from counting', async () => {
  const r = run(['run', 'slow', '--rootfs', rig.h.rootfs, '--health-cmd', 'sleep 7', '--health-timeout', '0.3', '--health-interval', '0.1', '--health-retries', '1', '--health-start-period', '60s', '--', 'sleep', '1000']);
  assert.equal(r.code, 0, r.stderr);
  await until('two checks timed out', () => (inspect('slow').health?.log.length ?? 0) >= 2, 15_000);
  const p = inspect('slow');
  assert.equal(p.state, 'running', 'retries 1, but in its start period');
  assert.equal(p.health?.status, 'starting');
  assert.equal(p.health?.failingStreak, 0);
  assert.deepEqual(p.health?.log.slice(0, 2).map((x) => [x.exitCode, x.output]), [0, 1].map(() => [-1, 'health check exceeded its timeout (300ms)']));
  assert.equal(run(['rm', '--force', 'slow']).code, 0);
  await until('no exec FIFOs left', () => execDirEntries().length === 0, 10_000);
  assert.deepEqual(await leftovers(rig), []);
});

test('bad health flags are refused naming the flag, through the CLI and the API, and nothing is created', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--health-cmd', 'true', '--health-interval', '0'], /--health-interval 0: want a duration above 0/],
    [['--health-cmd', 'true', '--health-interval', 'soon'], /--health-interval.*want a duration/],
    [['--health-cmd', 'true', '--health-retries', '0'], /--health-retries.*want a whole number from 1/],
    [['--health-cmd', 'true', '--health-timeout', '25h'], /--health-timeout 90000s: want a duration above 0, at most 24h/],
    [['--health-interval', '5s'], /need --health-cmd/],
    [['--health-cmd', 'true', '--no-healthcheck'], /--no-healthcheck cannot be combined with --health-cmd/],
    [['--health-cmd', '   '], /--health-cmd: the command is blank/],
  ];
  for (const [flags, message] of cases) {
    const r = run(['run', 'badhealth', '--rootfs', rig.h.rootfs, ...flags, '--', 'sleep', '1000']);
    // docker run's code for a run plugind refused (or a flag it did not take).
    assert.equal(r.code, 125, `${flags.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr, message, flags.join(' '));
  }
  const c = new PluginsClient(rig.s.address);
  try {
    await rejectsCode(c.run('badhealth', { rootfs: rig.h.rootfs, args: ['true'], healthCheck: { cmd: 'true', intervalSeconds: 0 } }), ErrorCode.InvalidArgument, /plugin badhealth: --health-interval 0: want a duration above 0/);
  } finally {
    c.close();
  }
  assert.match(run(['inspect', 'badhealth']).stderr, /not found/);
  assert.deepEqual(await leftovers(rig), []);
});
