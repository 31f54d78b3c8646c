// Operating plugins through the real CLI and service on a real containerd
// and this host's real cgroups: limits set by run and changed by update,
// an OOM kill reported, stats, per-plugin /metrics series, exec.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { after, before, test } from 'node:test';
import { ErrorCode } from '../../src/common/errors.js';
import { pluginsDir } from '../../src/common/paths.js';
import { cli, spawnCli } from '../helpers/cli.js';
import { rejectsCode } from '../helpers/rejects.js';
import { leftovers, metricsText, sample, startServed, until, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
const SLEEP = ['sleep', '1000'];

before(async () => {
  rig = await startServed('operate');
});

after(async () => {
  await rig?.close();
});

const run = (args: string[]): ReturnType<typeof cli> => cli(args, { address: rig.s.address });

/** A cgroup file of a plugin, on cgroup v1 or v2 (the default spec's path: /<namespace>/<id>). */
function cgroupFile(id: string, v1: [string, string], v2: string): string {
  const base = `${rig.namespace}/${id}`;
  const unified = `/sys/fs/cgroup/${base}/${v2}`;
  return existsSync(unified) ? unified : `/sys/fs/cgroup/${v1[0]}/${base}/${v1[1]}`;
}
const read = (path: string): string => readFileSync(path, 'utf8').trim();
const memoryLimit = (id: string): string => read(cgroupFile(id, ['memory', 'memory.limit_in_bytes'], 'memory.max'));
const pidsMax = (id: string): string => read(cgroupFile(id, ['pids', 'pids.max'], 'pids.max'));
const cpuQuota = (id: string): string => {
  const v2 = `/sys/fs/cgroup/${rig.namespace}/${id}/cpu.max`;
  return existsSync(v2) ? read(v2).split(' ')[0] ?? '' : read(`/sys/fs/cgroup/cpu/${rig.namespace}/${id}/cpu.cfs_quota_us`);
};

test('run --memory --cpus --pids-limit set the cgroup; update changes a running plugin and its record; a restart keeps the new limits', async () => {
  const r = run(['run', 'limited', '--rootfs', rig.h.rootfs, '--memory', '64m', '--cpus', '0.5', '--pids-limit', '100', '--restart', 'on-failure', '--', ...SLEEP]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(memoryLimit('limited'), String(64 << 20));
  assert.equal(cpuQuota('limited'), '50000');
  assert.equal(pidsMax('limited'), '100');
  const inspect = JSON.parse(run(['inspect', 'limited', '--json']).stdout) as { resources: unknown; pid: number };
  assert.deepEqual(inspect.resources, { memoryBytes: 64 << 20, cpus: 0.5, pidsLimit: 100 });

  const u = run(['update', 'limited', '--memory', '128m', '--pids-limit', '50']);
  assert.equal(u.code, 0, u.stderr);
  assert.equal(u.stdout, 'limited\n');
  assert.equal(memoryLimit('limited'), String(128 << 20));
  assert.equal(pidsMax('limited'), '50');
  assert.equal(cpuQuota('limited'), '50000', 'what update does not name stays');
  assert.deepEqual((await rig.s.client.inspect('limited')).resources, { memoryBytes: 128 << 20, cpus: 0.5, pidsLimit: 50 });

  // A crash: the restart policy runs it again from its record, with the limits update set.
  process.kill(inspect.pid, 'SIGKILL');
  await until('the policy to run it again', async () => {
    const p = await rig.s.client.inspect('limited');
    return p.state === 'running' && p.pid !== inspect.pid;
  });
  assert.equal(memoryLimit('limited'), String(128 << 20));
  assert.equal(pidsMax('limited'), '50');

  // -1 takes the pids limit away.
  assert.equal(run(['update', 'limited', '--pids-limit', '-1']).code, 0);
  assert.equal(pidsMax('limited'), 'max');
  assert.deepEqual((await rig.s.client.inspect('limited')).resources, { memoryBytes: 128 << 20, cpus: 0.5 });
  assert.equal(run(['rm', '--force', 'limited']).code, 0);
});

test('bad limits are refused naming the flag, and change nothing', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--memory', '0'], /--memory.*want a size like 64m/],
    [['--memory', '1x'], /--memory.*want a size like 64m/],
    [['--cpus', '-1'], /--cpus.*want a number of CPUs/],
    [['--cpus', String(availableParallelism() + 1)], new RegExp(`--cpus ${availableParallelism() + 1}: want a number of CPUs from 0.01 to ${availableParallelism()}`)],
    [['--pids-limit', '0'], /--pids-limit.*want a whole number above 0, or -1/],
  ];
  for (const [flags, re] of cases) {
    const r = run(['run', 'bad', '--rootfs', rig.h.rootfs, ...flags, '--', ...SLEEP]);
    assert.notEqual(r.code, 0, flags.join(' '));
    assert.match(r.stderr, re, flags.join(' '));
  }
  // Past the CLI, the service says the same to an API client.
  await rejectsCode(rig.s.client.run('bad', { rootfs: rig.h.rootfs, args: SLEEP, resources: { memoryBytes: 0 } }), ErrorCode.InvalidArgument, /^plugin bad: --memory 0: want a size like 64m/);
  await rejectsCode(rig.s.client.run('bad', { rootfs: rig.h.rootfs, args: SLEEP, resources: { cpus: 999 } }), ErrorCode.InvalidArgument, /^plugin bad: --cpus 999: want a number of CPUs/);
  assert.deepEqual(await rig.s.client.list(), []);
  assert.deepEqual(await leftovers(rig), []);

  const unknown = run(['update', 'nosuch', '--memory', '64m']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^plugind: plugin nosuch: not found/m);
  assert.equal(run(['run', 'steady', '--rootfs', rig.h.rootfs, '--memory', '64m', '--', ...SLEEP]).code, 0);
  const none = run(['update', 'steady']);
  assert.match(none.stderr, /nothing to update: give --memory, --cpus or --pids-limit/);
  const tooMany = run(['update', 'steady', '--cpus', String(availableParallelism() + 1)]);
  assert.match(tooMany.stderr, /--cpus \d+: want a number of CPUs from 0.01/);
  assert.equal(memoryLimit('steady'), String(64 << 20));
  assert.deepEqual((await rig.s.client.inspect('steady')).resources, { memoryBytes: 64 << 20 });
  assert.equal(run(['rm', '--force', 'steady']).code, 0);
});

test('a plugin that allocates past its memory limit is OOM killed: inspect and events say oomKilled, plugind_oom_kills_total counts it', async () => {
  const before = sample(await metricsText(rig.s.metricsUrl), 'plugind_oom_kills_total') ?? 0;
  const seen = rig.exits.length;
  // Doubles a shell variable until the kernel kills it.
  const r = run(['run', 'hog', '--rootfs', rig.h.rootfs, '--memory', '16m', '--', 'sh', '-c', 'x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done']);
  assert.equal(r.code, 0, r.stderr);
  await until('the OOM kill', () => rig.exits.slice(seen).some((e) => e.id === 'hog'));
  const exit = rig.exits.slice(seen).find((e) => e.id === 'hog');
  assert.equal(exit?.oomKilled, true);
  assert.equal(exit?.exitStatus, 137);
  const p = JSON.parse(run(['inspect', 'hog', '--json']).stdout) as { oomKilled?: boolean; state: string };
  assert.equal(p.state, 'stopped');
  assert.equal(p.oomKilled, true);
  assert.ok((sample(await metricsText(rig.s.metricsUrl), 'plugind_oom_kills_total') ?? 0) >= before + 1);
  assert.ok(rig.s.logs.some((l) => /reached its memory limit/.test(l) && l.includes('"plugin":"hog"')), 'said once in the log');
  assert.equal(run(['rm', 'hog']).code, 0);
});

test('stats: CPU % of one core, working set and limit, pids, as a table, JSON and a stream; /metrics has the same per plugin, promtool-clean, gone with the plugin', async (t) => {
  assert.equal(run(['run', 'busy', '--rootfs', rig.h.rootfs, '--cpus', '0.5', '--memory', '64m', '--', 'sh', '-c', 'while :; do :; done']).code, 0);
  assert.equal(run(['run', 'idle', '--rootfs', rig.h.rootfs, '--', ...SLEEP]).code, 0);
  const r = run(['stats', '--no-stream', '--json', 'busy', 'idle']);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as Array<{ id: string; cpuPercent: number; memoryBytes: number; memoryLimitBytes: number | null; pids: number }>;
  assert.deepEqual(rows.map((x) => Object.keys(x)), [0, 1].map(() => ['id', 'cpuPercent', 'memoryBytes', 'memoryLimitBytes', 'pids']));
  const [busy, idle] = rows;
  assert.equal(busy?.id, 'busy');
  // --cpus 0.5: half of one core, give or take a scheduler period.
  assert.ok(busy.cpuPercent > 25 && busy.cpuPercent < 65, `busy at ${busy.cpuPercent}%`);
  assert.equal(busy.memoryLimitBytes, 64 << 20);
  assert.ok(busy.memoryBytes > 0 && busy.memoryBytes < 64 << 20);
  assert.ok(busy.pids >= 1);
  assert.equal(idle?.id, 'idle');
  assert.equal(idle.memoryLimitBytes, null);
  assert.ok(idle.cpuPercent < 5, `idle at ${idle.cpuPercent}%`);

  const tableOut = run(['stats', '--no-stream']);
  assert.equal(tableOut.code, 0, tableOut.stderr);
  const lines = tableOut.stdout.trimEnd().split('\n');
  assert.match(lines[0] ?? '', /^ID\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS$/);
  assert.match(lines.find((l) => l.startsWith('busy')) ?? '', /^busy\s+\d+\.\d\d%\s+\S+ \/ 64MiB\s+\d+\.\d\d%\s+\d+$/);
  assert.match(lines.find((l) => l.startsWith('idle')) ?? '', /^idle\s+\d+\.\d\d%\s+\S+ \/ -\s+-\s+\d+$/);

  // Streaming until ^C: one array a second.
  const live = spawnCli(['stats', '--json', 'idle'], { address: rig.s.address });
  await until('two reads', () => live.stdout().split('\n').filter(Boolean).length >= 2, 10_000);
  live.child.kill('SIGINT');
  assert.equal((await live.exited).code, 0);
  for (const line of live.stdout().split('\n').filter(Boolean)) assert.equal((JSON.parse(line) as Array<{ id: string }>)[0]?.id, 'idle');

  const nosuch = run(['stats', '--no-stream', 'nosuch']);
  assert.equal(nosuch.code, 1);
  assert.match(nosuch.stderr, /plugin nosuch: not found/);

  const m = await metricsText(rig.s.metricsUrl);
  assert.ok((sample(m, 'plugind_plugin_cpu_seconds_total{plugin="busy"}') ?? 0) > 0);
  assert.equal(sample(m, 'plugind_plugin_memory_limit_bytes{plugin="busy"}'), 64 << 20);
  assert.equal(sample(m, 'plugind_plugin_memory_limit_bytes{plugin="idle"}'), undefined, 'no limit, no series');
  assert.ok((sample(m, 'plugind_plugin_memory_bytes{plugin="idle"}') ?? 0) > 0);
  assert.ok((sample(m, 'plugind_plugin_pids{plugin="idle"}') ?? 0) >= 1);
  const promtool = spawnSync('promtool', ['check', 'metrics'], { input: m, encoding: 'utf8' });
  if (promtool.error) t.diagnostic('promtool not installed: metrics not checked with it');
  else assert.equal(promtool.status, 0, promtool.stdout + promtool.stderr);

  for (const id of ['busy', 'idle']) assert.equal(run(['rm', '--force', id]).code, 0);
  const after = await metricsText(rig.s.metricsUrl);
  assert.doesNotMatch(after, /plugin="(busy|idle)"/, 'series removed with the plugins');
  assert.match(after, /^# TYPE plugind_plugin_cpu_seconds_total counter$/m, 'still declared with no plugin');
});

/** Host pids of processes whose command line is exactly these words. */
function pidsOf(...words: string[]): number[] {
  const want = words.join('\0') + '\0';
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8') === want) found.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}
const execDir = (): string => join(pluginsDir(rig.dataDir, rig.namespace), 'exec');
const execFifos = (): string[] => (existsSync(execDir()) ? readdirSync(execDir()) : []);

test('exec: output to stdout and stderr, exit status, env over the plugin\'s; all its output, however much', async () => {
  assert.equal(run(['run', 'ex', '--rootfs', rig.h.rootfs, '--env', 'WHO=plugin', '--env', 'KEEP=kept', '--', ...SLEEP]).code, 0);
  const r = run(['exec', 'ex', '--env', 'WHO=exec', '--', 'sh', '-c', 'echo "out $WHO $KEEP"; echo err >&2; exit 3']);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, 'out exec kept\n');
  assert.equal(r.stderr, 'err\n');
  const big = run(['exec', 'ex', '--', 'sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" x']);
  assert.equal(big.code, 0, big.stderr);
  assert.equal(big.stdout.length, 3_000_000);
  assert.equal(run(['exec', 'ex', '--', 'true']).code, 0);
  assert.deepEqual(execFifos(), [], 'no FIFO left');
});

test('exec of a stopped or unknown plugin, or with a bad --env, is refused naming it', async () => {
  assert.equal(run(['run', 'done', '--rootfs', rig.h.rootfs, '--', 'true']).code, 0);
  await until('done exits', () => rig.exits.some((e) => e.id === 'done'), 10_000);
  const stopped = run(['exec', 'done', '--', 'true']);
  assert.equal(stopped.code, 1);
  assert.match(stopped.stderr, /plugin done: it is stopped: exec needs a running plugin/);
  const unknown = run(['exec', 'nosuch', '--', 'true']);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /plugin nosuch: not found/);
  const env = run(['exec', 'ex', '--env', 'NOEQUALS', '--', 'true']);
  assert.equal(env.code, 2, 'a usage error');
  assert.match(env.stderr, /--env "NOEQUALS": want KEY=VALUE/);
  const missing = run(['exec', 'ex', '--', 'no-such-command']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /no-such-command/);
  assert.deepEqual(execFifos(), []);
  assert.equal(run(['rm', 'done']).code, 0);
});

test('exec: the process is killed and reaped, its FIFOs removed, when the client is killed or the plugin exits meanwhile', async () => {
  const gone = spawnCli(['exec', 'ex', '--', 'sleep', '4321'], { address: rig.s.address });
  await until('exec runs', () => pidsOf('sleep', '4321').length === 1, 10_000);
  gone.child.kill('SIGKILL');
  await gone.exited;
  await until('exec killed with its client', () => pidsOf('sleep', '4321').length === 0, 10_000);
  await until('its FIFOs removed', () => execFifos().length === 0, 10_000);

  const cut = spawnCli(['exec', 'ex', '--', 'sleep', '4322'], { address: rig.s.address });
  await until('exec runs', () => pidsOf('sleep', '4322').length === 1, 10_000);
  assert.equal(run(['kill', 'ex']).code, 0);
  const { code } = await cut.exited;
  assert.equal(code, 137, cut.stderr());
  assert.deepEqual(pidsOf('sleep', '4322'), []);
  await until('its FIFOs removed', () => execFifos().length === 0, 10_000);
  assert.equal(run(['rm', 'ex']).code, 0);
  assert.deepEqual(await leftovers(rig), []);
});
