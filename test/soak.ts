// The soak: `npm run soak -- --minutes M`. Against a private containerd and
// the real `plugind serve`, rounds of fault scenarios run until M minutes
// have passed, while 20 long-lived plugins log numbered lines throughout:
//
//   churn            100 run → exit lifecycles, 8 at a time
//   worker-crash     churn while a shard worker is crashed three times
//   containerd-kill  containerd SIGKILLed (its supervisor restarts it) under churn
//   plugind-kill     plugind SIGKILLed and started again
//   plugind-restart  plugind SIGTERMed and started again
//   flood            8 plugins writing as fast as they can for 10 s
//
// After each scenario: every churned plugin's exit was told once (events
// stream and plugind_exits_total agree), the long-lived plugins run with the
// same pids, nothing is left of removed plugins (containers, tasks, FIFOs,
// logs), and plugind's fds and RSS are printed. At the end the long-lived
// plugins' logs are read back: lines in order, gaps only at plugind kills.
// Exits 1 at the first broken promise, printing what broke.
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import type { ExitEvent, PluginsClient } from '../src/api/client.js';
import { lineGaps } from './helpers/log-lines.js';
import { pool } from './helpers/pool.js';
import { leftovers, logText, metricsText, sample, serve, startServed, until, usage, watchExits, type ServedRig } from './helpers/serve.js';

const { values } = parseArgs({ options: { minutes: { type: 'string', default: '10' } } });
const minutes = Number(values.minutes);
if (!(minutes > 0)) {
  console.error(`--minutes ${values.minutes}: want a positive number`);
  process.exit(2);
}

const SCENARIOS = ['churn', 'worker-crash', 'containerd-kill', 'plugind-kill', 'plugind-restart', 'flood'] as const;
type Scenario = (typeof SCENARIOS)[number];
const LONG = Array.from({ length: 20 }, (_, i) => `long-${i}`);

class Broken extends Error {}
function check(ok: boolean, what: string): void {
  if (!ok) throw new Broken(what);
}

const rig: ServedRig = await startServed('soak');
const { h } = rig;
/** Exits told since the last settleChurn or plugind restart. */
const exits: ExitEvent[] = [];
let stream = (await watchExits(rig.s.client, exits)).events;
const client = (): PluginsClient => rig.s.client;
const exitsTotal = async (): Promise<number> => sample(await metricsText(rig.s.metricsUrl), 'plugind_exits_total') ?? 0;

let seq = 0;
let lifecycles = 0;
let kills = 0;
async function churn(n: number, concurrency = 8): Promise<void> {
  const ids = Array.from({ length: n }, () => `c${seq++}`);
  await pool(ids, concurrency, (id) => client().run(id, { rootfs: h.rootfs, args: ['sh', '-c', 'exit 3'] }).catch(() => {}));
}

/** Every churned plugin that exists has exited and was told once; then all are removed. */
async function settleChurn(totalBefore: number): Promise<number> {
  const churned = async (): Promise<string[]> => (await client().list()).filter((p) => /^c\d+$/.test(p.id)).map((p) => p.id);
  await until('churned plugins to exit', async () => (await client().list()).every((p) => !/^c\d+$/.test(p.id) || p.state === 'stopped'), 60_000);
  const ids = await churned();
  await until('their exits told', () => ids.every((id) => exits.some((e) => e.id === id)), 30_000).catch(() => {});
  // A while for an exit told twice to show: the check below is that none is.
  await sleep(300);
  const told = new Map<string, number>();
  for (const e of exits) told.set(e.id, (told.get(e.id) ?? 0) + 1);
  const missing = ids.filter((id) => !told.has(id));
  const doubled = [...told].filter(([, k]) => k > 1).map(([id]) => id);
  check(missing.length === 0, `exits never told: ${missing.join(' ')}`);
  check(doubled.length === 0, `exits told twice: ${doubled.join(' ')}`);
  const counted = (await exitsTotal()) - totalBefore;
  check(counted === ids.length, `plugind_exits_total grew by ${counted} for ${ids.length} exits`);
  await pool(ids, 8, (id) => client().remove(id, true));
  lifecycles += ids.length;
  exits.length = 0;
  return ids.length;
}

async function restartPlugind(signal: NodeJS.Signals): Promise<void> {
  stream.close();
  await rig.s.stop(signal);
  if (signal === 'SIGKILL') kills += 1;
  rig.s = await serve({ dataDir: rig.dataDir, containerdAddress: h.address, namespace: rig.namespace });
  exits.length = 0;
  stream = (await watchExits(rig.s.client, exits)).events;
}

async function scenario(name: Scenario): Promise<string> {
  const before = await exitsTotal();
  switch (name) {
    case 'churn':
      await churn(100);
      return `${await settleChurn(before)} lifecycles`;
    case 'worker-crash': {
      const work = churn(100, 4);
      for (let k = 0; k < 3; k++) {
        // Crashes spread over the churn, not all at its start.
        await sleep(300);
        await client().crashWorker(k % 2).catch(() => {});
      }
      await work;
      return `${await settleChurn(before)} lifecycles, 3 worker crashes`;
    }
    case 'containerd-kill': {
      const work = churn(60, 4);
      // Into the churn, so that the kill falls among creates and exits.
      await sleep(300);
      process.kill(h.supervisor.pid as number, 'SIGKILL');
      await work;
      await until('containerd back', () => h.supervisor.pid !== undefined, 30_000);
      return `${await settleChurn(before)} lifecycles, containerd killed`;
    }
    case 'plugind-kill':
    case 'plugind-restart':
      await restartPlugind(name === 'plugind-kill' ? 'SIGKILL' : 'SIGTERM');
      return 'plugind back';
    case 'flood': {
      const ids = Array.from({ length: 8 }, (_, i) => `flood-${i}`);
      const log = { maxSize: 16 << 20, maxFiles: 2 };
      await pool(ids, 4, (id) => client().run(id, { rootfs: h.rootfs, args: ['cat', '/dev/zero'], log }));
      let peak = 0;
      for (let i = 0; i < 40; i++) {
        peak = Math.max(peak, usage(rig.s.pid).rssMb);
        // Sampling while they flood for 10 s: the flood is the scenario.
        await sleep(250);
      }
      await pool(ids, 8, (id) => client().remove(id, true));
      return `8 plugins flooded 10 s, RSS peak ${peak.toFixed(0)} MB`;
    }
  }
}

let status = 0;
const started = Date.now();
const deadline = started + minutes * 60_000;
let rounds = 0;
try {
  const line = 'i=0; while true; do echo line$i; i=$((i+1)); sleep 0.1; done';
  await pool(LONG, 8, (id) => client().run(id, { rootfs: h.rootfs, args: ['sh', '-c', line] }));
  const pids = new Map((await client().list()).map((p) => [p.id, p.pid]));
  const base = usage(rig.s.pid);
  console.log(`soak: ${minutes} min; 20 long-lived plugins; plugind fds ${base.fds}, RSS ${base.rssMb.toFixed(0)} MB`);
  for (let i = 0; Date.now() < deadline; i++) {
    const name = SCENARIOS[i % SCENARIOS.length] as Scenario;
    const t0 = Date.now();
    const what = await scenario(name);
    const left = await leftovers(rig, LONG);
    check(left.length === 0, `after ${name}: left behind: ${left.join(', ')}`);
    const list = await client().list();
    for (const id of LONG) {
      const p = list.find((x) => x.id === id);
      check(p?.state === 'running' && p.pid === pids.get(id), `after ${name}: ${id} is ${p?.state ?? 'gone'} (pid ${p?.pid}, was ${pids.get(id)})`);
    }
    const u = usage(rig.s.pid);
    rounds += 1;
    console.log(
      `round ${String(rounds).padStart(3)} ${name.padEnd(16)} ${((Date.now() - t0) / 1000).toFixed(1).padStart(5)} s  ${what}; plugind fds ${u.fds}, RSS ${u.rssMb.toFixed(0)} MB`,
    );
  }
  await pool(LONG, 8, (id) => client().stop(id, 0));
  let lost = 0;
  let gaps = 0;
  for (const id of LONG) {
    const g = lineGaps(await logText(client(), id, 'stdout'));
    check(g.disorder === undefined, `${id}: ${g.disorder}`);
    gaps += g.gaps;
    lost += g.missing;
  }
  check(gaps <= kills * LONG.length, `${gaps} gaps in the long-lived logs; only the ${kills} plugind kills may leave any`);
  await pool(LONG, 8, (id) => client().remove(id));
  const end = usage(rig.s.pid);
  console.log(
    `soak passed: ${rounds} rounds in ${((Date.now() - started) / 60_000).toFixed(1)} min, ${lifecycles} churned lifecycles (each exit told once), ` +
      `${kills} plugind kills (${lost} log lines lost in ${gaps} gaps), nothing left behind; plugind fds ${base.fds} → ${end.fds}, RSS ${base.rssMb.toFixed(0)} → ${end.rssMb.toFixed(0)} MB`,
  );
} catch (err) {
  status = 1;
  console.error(`soak FAILED after ${rounds} rounds: ${err instanceof Broken ? err.message : (err as Error).stack}`);
  // plugind's own words on the plugins named.
  const named = new Set((err as Error).message.match(/\b(?:c\d+|long-\d+|flood-\d+)\b/g) ?? []);
  for (const line of rig.s.logs) if ([...named].some((id) => line.includes(`"${id}"`))) console.error(line);
} finally {
  stream.close();
  await rig.close();
}
process.exit(status);
