// What deploy/ ships, checked with the real tools: the systemd unit under
// systemd-analyze, the Prometheus config and rules under promtool (and the
// rules' unit tests), a real Prometheus scraping a running plugind and
// evaluating those rules, and the Grafana dashboard's queries against the
// metrics plugind exports.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { freePort, metricsText, startServed, until, type ServedRig } from '../helpers/serve.js';

const DEPLOY = join(import.meta.dirname, '../../deploy');

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function run(cmd: string, args: string[], cwd = DEPLOY): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('systemd: the unit is clean under systemd-analyze verify and has what a host daemon needs', (t) => {
  if (!have('systemd-analyze')) {
    t.skip('systemd-analyze not found (package systemd; scripts/setup.sh installs it)');
    return;
  }
  const path = join(DEPLOY, 'systemd/plugind.service');
  const unit = readFileSync(path, 'utf8');
  for (const line of [
    'After=network.target containerd.service',
    'Requires=containerd.service',
    'KillMode=process',
    'Delegate=yes',
    'LimitNOFILE=1048576',
    'TasksMax=32768',
    'Restart=always',
  ]) {
    assert.ok(unit.split('\n').includes(line), `${line} in the unit`);
  }
  assert.match(unit, /--containerd-address unix:\/\/\/run\/containerd\/containerd\.sock/);
  // verify checks that ExecStart's program exists: the unit names Debian's
  // /usr/bin/node; where node lives elsewhere, this machine's is put in.
  let checked = path;
  if (process.execPath !== '/usr/bin/node') {
    const dir = mkdtempSync(join(tmpdir(), 'pd-unit-'));
    checked = join(dir, 'plugind.service');
    writeFileSync(checked, unit.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
  }
  const r = run('systemd-analyze', ['verify', checked]);
  assert.equal(r.status, 0, r.out);
  assert.equal(r.out.trim(), '', 'no warnings');
});

describe('prometheus', () => {
  test('promtool: config, rules and the rules’ unit tests', (t) => {
    if (!have('promtool')) {
      t.skip('promtool not found (package prometheus; scripts/setup.sh installs it)');
      return;
    }
    for (const args of [
      ['check', 'config', 'prometheus/prometheus.yml'],
      ['check', 'rules', 'prometheus/plugind.rules.yml'],
      ['test', 'rules', 'plugind.rules.test.yml'],
    ]) {
      const r = run('promtool', args, args[1] === 'rules' && args[0] === 'test' ? join(DEPLOY, 'prometheus') : DEPLOY);
      assert.equal(r.status, 0, `promtool ${args.join(' ')}:\n${r.out}`);
    }
  });

  describe('a real scrape of a running plugind', () => {
    let rig: ServedRig;
    let prom: ChildProcess | undefined;
    let dir: string;
    let api = '';
    let exported: Set<string>;

    before(async () => {
      rig = await startServed('prom');
      exported = metricNames(await metricsText(rig.s.metricsUrl));
    });
    after(async () => {
      if (prom && prom.exitCode === null) {
        const exited = once(prom, 'exit');
        prom.kill('SIGTERM');
        await exited;
      }
      if (dir) rmSync(dir, { recursive: true, force: true });
      await rig?.close();
    });

    test('Prometheus scrapes plugind and the recording rules evaluate', async (t) => {
      if (!have('prometheus')) {
        t.skip('prometheus not found and could not be installed (package prometheus): the real scrape is not checked');
        return;
      }
      dir = mkdtempSync(join(tmpdir(), 'pd-prom-'));
      const target = new URL(rig.s.metricsUrl).host;
      writeFileSync(
        join(dir, 'prometheus.yml'),
        [
          'global: { scrape_interval: 1s, evaluation_interval: 1s }',
          `rule_files: ['${join(DEPLOY, 'prometheus/plugind.rules.yml')}']`,
          'scrape_configs:',
          '  - job_name: plugind',
          `    static_configs: [{ targets: ['${target}'] }]`,
          '',
        ].join('\n'),
      );
      const port = await freePort();
      api = `http://127.0.0.1:${port}/api/v1`;
      const logs: string[] = [];
      prom = spawn(
        'prometheus',
        [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      prom.stdout?.on('data', (b: Buffer) => logs.push(b.toString()));
      prom.stderr?.on('data', (b: Buffer) => logs.push(b.toString()));
      process.once('exit', () => prom?.kill('SIGKILL'));
      await until('prometheus to scrape plugind', async () => (await query('up{job="plugind"}').catch(() => undefined)) === 1, 60_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${logs.join('').slice(-3000)}`);
      });

      // A few plugins, then more until the create-latency p99 over the last minute is a number.
      const p99 = 'histogram_quantile(0.99, sum by (le) (rate(plugind_create_duration_seconds_bucket[1m])))';
      let n = 0;
      for (; n < 3; n++) await rig.s.client.run(`p${n}`, { rootfs: rig.h.rootfs, args: ['sh', '-c', 'exit 0'] });
      let value: number | undefined;
      const end = Date.now() + 90_000;
      while (value === undefined || !Number.isFinite(value)) {
        assert.ok(Date.now() < end, `no create-latency p99 from Prometheus: ${value}`);
        await rig.s.client.run(`p${n++}`, { rootfs: rig.h.rootfs, args: ['sh', '-c', 'exit 0'] });
        await sleep(1000);
        value = await query(p99);
      }
      t.diagnostic(`${p99} = ${value} after ${n} plugins`);
      assert.ok(value > 0 && value < 60);
      await until('the recording rules', async () => Number.isFinite(await query('instance:plugind_create_duration_seconds:p99')), 30_000);
      await until('exits per second', async () => ((await query('instance:plugind_exits:rate1m')) ?? 0) > 0, 30_000);
      assert.equal(await query('plugind_containerd_up'), 1);
      for (let i = 0; i < n; i++) await rig.s.client.remove(`p${i}`);
    });

    test('Grafana dashboard: valid JSON; every query uses metrics plugind exports or the recording rules', () => {
      const dash = JSON.parse(readFileSync(join(DEPLOY, 'grafana/plugind.json'), 'utf8')) as Dashboard;
      const rules = readFileSync(join(DEPLOY, 'prometheus/plugind.rules.yml'), 'utf8');
      const recorded = new Set([...rules.matchAll(/^\s*- record: (\S+)$/gm)].map((m) => m[1] as string));
      const titles = dash.panels.map((p) => p.title);
      for (const want of ['Create latency', 'Exit event lag p99', 'Plugins by state', 'Plugin output by shard', 'Exits per second', 'Worker restarts']) {
        assert.ok(titles.includes(want), `a "${want}" panel`);
      }
      assert.equal(dash.panels.find((p) => p.title === 'Create latency')?.type, 'heatmap');
      const check = (where: string, expr: string): void => {
        for (const [name] of expr.matchAll(/\b(?:instance:)?plugind_[a-z_]+(?::[a-z0-9_]+)?/g)) {
          if (name.includes(':')) assert.ok(recorded.has(name), `${where}: ${name} is not a recording rule in plugind.rules.yml`);
          else assert.ok(exported.has(name.replace(/_(bucket|sum|count)$/, '')), `${where}: plugind does not export ${name}`);
        }
      };
      for (const p of dash.panels) {
        assert.ok(p.targets.length > 0, `${p.title}: no query`);
        for (const { expr } of p.targets) check(`panel "${p.title}"`, expr);
      }
      // The rules' own expressions too.
      for (const [, expr] of rules.matchAll(/^\s*expr: (.+)$/gm)) check('plugind.rules.yml', expr as string);
    });

    async function query(q: string): Promise<number | undefined> {
      const res = await fetch(`${api}/query?query=${encodeURIComponent(q)}`);
      const body = (await res.json()) as { status: string; error?: string; data?: { result: Array<{ value: [number, string] }> } };
      if (body.status !== 'success') throw new Error(`${q}: ${body.error}`);
      const first = body.data?.result[0];
      return first ? Number(first.value[1]) : undefined;
    }
  });
});

interface Dashboard {
  panels: Array<{ title: string; type: string; targets: Array<{ expr: string }> }>;
}

/** Metric names from the `# TYPE` lines of an exposition. */
function metricNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
}
