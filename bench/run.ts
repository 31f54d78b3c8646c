// plugind's load benchmark: the Go baseline's modes (lifecycle, stdio,
// steady) done by plugind, by containerd's Go client (gobench) and by moby's
// plugin executor (mobybench), interleaved against one private containerd,
// so that every ratio comes from one run on one machine.
//
//   npm run bench -- [--quick] [--modes lifecycle,stdio,steady] [--tools plugind,gobench,mobybench]
//                    [--lifecycle-n 200] [--lifecycle-c 1,8,32] [--stdio-k 20] [--stdio-b 67108864]
//                    [--steady-n 200] [--steady-c 8] [--scrape-n 1000] [--scrape-k 20]
//                    [--workers N] [--cgroups ns|none] [--runtime runc|crun] [--stdio pipes|fifos]
//                    [--profile DIR] [--out FILE.json]
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { ContainerdSupervisor, connect } from '../src/containerd/index.js';
import { crunRefusesHost } from '../test/helpers/crun.js';
import { makeBusyboxRootfs } from '../test/helpers/rootfs.js';
import { chartSvg, type Series } from './chart.js';
import { BENCH_STATE, ensureGoTools, runGo, type GoTarget, type GoTool } from './go.js';
import { Plugind, lifecycle, scrape, stdio, steady } from './plugind.js';
import type { Summary } from './stats.js';

const { values: o } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    modes: { type: 'string', default: 'lifecycle,stdio,steady' },
    tools: { type: 'string', default: 'plugind,gobench,mobybench' },
    'lifecycle-n': { type: 'string' },
    'lifecycle-c': { type: 'string' },
    'stdio-k': { type: 'string' },
    'stdio-b': { type: 'string' },
    'steady-n': { type: 'string' },
    'steady-c': { type: 'string', default: '8' },
    'scrape-n': { type: 'string' },
    'scrape-k': { type: 'string', default: '20' },
    workers: { type: 'string', default: String(availableParallelism()) },
    cgroups: { type: 'string', default: 'ns' },
    runtime: { type: 'string', default: 'runc' },
    stdio: { type: 'string', default: 'pipes' },
    pause: { type: 'string', default: '2' },
    out: { type: 'string' },
    profile: { type: 'string' },
  },
});

const quick = o.quick ?? false;
const modes = new Set((o.modes as string).split(','));
const tools = new Set((o.tools as string).split(','));
const LN = Number(o['lifecycle-n'] ?? (quick ? 30 : 200));
const LC = (o['lifecycle-c'] ?? (quick ? '1,8' : '1,8,32')).split(',').map(Number);
const SK = Number(o['stdio-k'] ?? (quick ? 4 : 20));
const SB = Number(o['stdio-b'] ?? (quick ? 8 << 20 : 64 << 20));
const STN = Number(o['steady-n'] ?? (quick ? 20 : 200));
const STC = Number(o['steady-c']);
// The scrape mode is plugind's own (the Go tools have no /metrics): not in the default set.
const SCN = Number(o['scrape-n'] ?? (quick ? 100 : 1000));
const SCK = Number(o['scrape-k']);
// A cool-down between runs (--pause), so that one run's exits and cleanup do not weigh on the next.
const PAUSE = Number(o.pause) * 1000;
const cgroups = o.cgroups === 'none' ? '' : 'ns';
// The OCI runtime under the runc v2 shim, the same for all three tools.
const runtime = o.runtime as string;
if (runtime !== 'runc' && runtime !== 'crun') throw new Error(`--runtime must be runc or crun, not ${runtime}`);
// How plugind's plugins' output reaches it (serve --stdio); the Go tools read FIFOs as they do.
const stdioVia = o.stdio as 'pipes' | 'fifos';
if ((stdioVia as string) !== 'pipes' && (stdioVia as string) !== 'fifos') throw new Error(`--stdio must be pipes or fifos, not ${stdioVia}`);
const crunProblem = runtime === 'crun' ? crunRefusal() : undefined;
if (crunProblem) {
  process.stderr.write(`bench: --runtime crun: ${crunProblem}\n`);
  process.exit(2);
}

/** Why crun (1.8) would refuse every container here, with what to change (see test/helpers/crun.ts). */
function crunRefusal(): string | undefined {
  const why = crunRefusesHost();
  if (!why) return undefined;
  return `crun refuses this host ("cgroups in hybrid mode not supported"): ${why}; move those controllers to cgroup v1 or boot the host with cgroup v2 only`;
}

const log = (s: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);
const results: Array<Record<string, unknown>> = [];
const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();

async function main(): Promise<void> {
  const work = mkdtempSync('/tmp/pdb-');
  const supervisor = new ContainerdSupervisor({ dataDir: work });
  let p: Plugind | undefined;
  try {
    await supervisor.start();
    const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
    mkdirSync(join(rootfs, 'run/docker/plugins'), { recursive: true });
    log(`containerd pid ${supervisor.pid}, work dir ${work}; cgroups path ${cgroups === 'ns' ? '/<ns>/<id>' : 'unset'}; runtime ${runtime}`);
    const go: GoTarget | undefined =
      tools.has('gobench') || tools.has('mobybench')
        ? { bin: ensureGoTools(log), address: supervisor.socketPath, rootfs, work, containerdPid: supervisor.pid as number, runtimeBinary: runtime }
        : undefined;
    const goCg = ['-cgroups-path', cgroups === 'ns' ? 'ns' : ''];
    const runGoTool = async (tool: GoTool, label: string, args: string[]): Promise<void> => {
      if (!go || !tools.has(tool)) return;
      log(`run ${label}`);
      // All three get the same placement: mobybench's spec is moby's plugin
      // manager's, with the cgroupsPath set as the others' (moby's own has none).
      results.push(await runGo(go, tool, label, [...args, ...goCg]));
      await sleep(PAUSE);
    };
    if (tools.has('plugind')) {
      p = new Plugind({ containerdAddress: supervisor.address, dataDir: join(work, 'plugind'), namespace: 'bench-plugind', rootfs, workers: Number(o.workers), cgroupsPath: cgroups, runtimeBinary: runtime, stdio: stdioVia, ...(o.profile ? { profileDir: o.profile } : {}) });
      await p.start();
      log(`plugind pid ${p.pid}, ${o.workers} workers, ready in ${Math.round(p.readyMs)} ms`);
    }
    const runPlugind = async (label: string, fn: (p: Plugind) => Promise<Record<string, unknown>>): Promise<void> => {
      if (!p) return;
      log(`run ${label}`);
      results.push({ ...(await fn(p)), workers: Number(o.workers), cgroups_path: cgroups || 'unset', runtime_binary: runtime, plugind_stdio: stdioVia });
      await sleep(PAUSE);
    };

    if (modes.has('lifecycle')) {
      for (const c of LC) {
        await runPlugind(`plugind lifecycle n=${LN} c=${c}`, (x) => lifecycle(x, `plugind lifecycle n=${LN} c=${c}`, LN, c));
        await runGoTool('gobench', `gobench lifecycle io=streams n=${LN} c=${c}`, ['-mode', 'lifecycle', '-io', 'streams', '-n', String(LN), '-c', String(c)]);
        await runGoTool('mobybench', `mobybench lifecycle n=${LN} c=${c}`, ['-mode', 'lifecycle', '-n', String(LN), '-c', String(c)]);
      }
    }
    if (modes.has('stdio')) {
      await runPlugind(`plugind stdio k=${SK} b=${SB}`, (x) => stdio(x, `plugind stdio k=${SK} b=${SB}`, SK, SB));
      await runGoTool('gobench', `gobench stdio io=streams k=${SK} b=${SB}`, ['-mode', 'stdio', '-io', 'streams', '-n', String(SK), '-c', '0', '-bytes', String(SB)]);
      await runGoTool('mobybench', `mobybench stdio k=${SK} b=${SB}`, ['-mode', 'stdio', '-n', String(SK), '-c', '0', '-bytes', String(SB)]);
    }
    if (modes.has('steady')) {
      const settle = quick ? 1000 : 3000;
      if (p) {
        const label = `plugind steady n=${STN} c=${STC}`;
        log(`run ${label}`);
        const r = await steady(p, label, STN, STC, settle);
        p = r.plugind;
        results.push({ ...r.result, workers: Number(o.workers), cgroups_path: cgroups || 'unset', runtime_binary: runtime });
        await sleep(PAUSE);
      }
      await runGoTool('gobench', `gobench steady n=${STN} c=${STC}`, ['-mode', 'steady', '-n', String(STN), '-c', String(STC), '-settle', `${settle}ms`]);
      await runGoTool('mobybench', `mobybench steady n=${STN} c=${STC}`, ['-mode', 'steady', '-n', String(STN), '-c', String(STC), '-settle', `${settle}ms`]);
    }
    if (modes.has('scrape')) await runPlugind(`plugind scrape n=${SCN} k=${SCK}`, (x) => scrape(x, `plugind scrape n=${SCN} k=${SCK}`, SCN, 16, SCK));
  } finally {
    await p?.stop('SIGTERM').catch(() => {});
    await p?.stopKeeper().catch(() => {});
    await cleanup(supervisor).catch((err: Error) => log(`cleanup: ${err.message}`));
    await supervisor.stop();
    rmSync(work, { recursive: true, force: true });
  }
  report();
}

/** Kills and deletes whatever a failed run left in the bench's containerd. */
async function cleanup(supervisor: ContainerdSupervisor): Promise<void> {
  if (!supervisor.pid) return;
  for (const ns of ['bench-plugind', 'bench-go', 'bench-plugins.moby']) {
    const c = connect({ address: supervisor.address, namespace: ns });
    for (const t of await c.tasks.list()) {
      await c.tasks.kill(t.containerId, 9, { all: true }).catch(() => {});
      await c.tasks.wait(t.containerId, { timeoutMs: 5000 }).catch(() => {});
      await c.tasks.delete(t.containerId).catch(() => {});
    }
    for (const ctr of await c.containers.list()) await c.containers.delete(ctr.id).catch(() => {});
    c.close();
  }
}

type Run = Record<string, unknown> & { tool?: string; mode?: string; label?: string; c?: number };

/** A number at a dotted path; `a|b` tries a, then b (the tools name some figures differently). */
function get(r: Run | undefined, paths: string): number | undefined {
  for (const path of paths.split('|')) {
    let v: unknown = r;
    for (const k of path.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
    if (typeof v === 'number') return v;
  }
  return undefined;
}

function find(tool: string, mode: string, c?: number): Run | undefined {
  return results.find((r) => r.tool === tool && r.mode === mode && (c === undefined || r.c === c)) as Run | undefined;
}

function report(): void {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);
  const out = o.out ?? join(BENCH_STATE, 'results', `bench-${stamp}.json`);
  mkdirSync(dirname(out), { recursive: true });
  const doc = { meta: { date: new Date().toISOString(), command, cpus: availableParallelism(), workers: Number(o.workers), cgroups_path: cgroups || 'unset', runtime, plugind_stdio: stdioVia, quick }, runs: results };
  writeFileSync(out, JSON.stringify(doc, null, 2) + '\n');

  const rows: string[][] = [['metric', 'plugind', 'gobench', 'mobybench', 'plugind/moby']];
  const ratio = (a?: number, b?: number): string => (a !== undefined && b ? (a / b).toFixed(2) : '-');
  const line = (name: string, mode: string, path: string, c?: number): void => {
    const v = ['plugind', 'gobench', 'mobybench'].map((t) => get(find(t, mode, c), path));
    if (v.every((x) => x === undefined)) return;
    rows.push([name, ...v.map((x) => (x === undefined ? '-' : String(x))), ratio(v[0], v[2])]);
  };
  for (const c of LC) {
    line(`create→started p50 ms c=${c}`, 'lifecycle', 'create_start_ms.p50', c);
    line(`create→started p99 ms c=${c}`, 'lifecycle', 'create_start_ms.p99', c);
    line(`lifecycles/s c=${c}`, 'lifecycle', 'throughput_per_s', c);
    line(`exit lag p50 ms c=${c}`, 'lifecycle', 'exit_event_lag_ms.p50', c);
    line(`exit lag p99 ms c=${c}`, 'lifecycle', 'exit_event_lag_ms.p99', c);
    // CPU is user+sys of the client process for every tool (plugind: all its threads).
    line(`CPU s/lifecycle c=${c}`, 'lifecycle', 'plugind_cpu_s_per_lifecycle|client_cpu_s_per_lifecycle', c);
  }
  // mobybench's aggregate window already starts at the first Create.
  line('stdio MB/s (from first create)', 'stdio', 'aggregate_MBps_from_create|aggregate_MBps');
  line('stdio CPU s (user+sys)', 'stdio', 'plugind_cpu_s|cpu.client_cpu_s');
  line('stdio inspect p99 ms during flood', 'stdio', 'inspect_during_flood_ms.p99');
  line('steady create p50 ms', 'steady', 'create_start_ms.p50');
  line('steady create all s', 'steady', 'create_all_s|create_phase_s');
  line('steady client RSS kB held', 'steady', 'plugind_rss_kb_held|mem_held.client_rss_kb');
  line('steady restore after restart s', 'steady', 'restore_s');
  line('steady SIGTERM→all exits s', 'steady', 'sigterm_to_all_exit_handled_s|sigterm_to_all_exit_events_s');
  line(`/metrics scrape p50 ms, ${SCN} plugins`, 'scrape', 'scrape_ms.p50');
  line(`/metrics scrape max ms, ${SCN} plugins`, 'scrape', 'scrape_ms.max');
  line('/metrics scrape CPU ms each', 'scrape', 'scrape_cpu_ms_each');
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const table = rows.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')).join('\n');
  const verified = ['plugind', 'gobench', 'mobybench'].map((t) => `${t} ${String(find(t, 'stdio')?.bytes_match ?? '-')}`).join(', ');
  process.stdout.write(`\nruntime: ${runtime}; plugind's stdio: ${stdioVia}\n${table}\n\nbytes verified (stdio): ${verified}\n`);
  for (const r of results) if (Number(r.errors ?? 0) > 0) process.stdout.write(`errors in ${String(r.label)}: ${JSON.stringify(r.error_samples)}\n`);

  const series = (path: 'create_start_ms' | 'exit_event_lag_ms'): Series[] =>
    results
      .filter((r) => r.mode === 'lifecycle' && r[path])
      .map((r) => ({ tool: String(r.tool), label: String(r.label).replace(/ io=streams/, ''), summary: r[path] as Summary }));
  const svg = out.replace(/\.json$/, '.svg');
  writeFileSync(svg, chartSvg(series('create_start_ms'), series('exit_event_lag_ms')));
  process.stdout.write(`\nresults: ${out}\nchart:   ${svg}\nreproduce: ${command}\n`);
}

main().catch((err: Error) => {
  log(`failed: ${err.stack ?? err.message}`);
  process.exitCode = 1;
});
