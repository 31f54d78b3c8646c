// The verbs that operate running plugins: update (limits), stats and exec,
// and the limit flags `run` shares with update.
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, type Command } from 'commander';
import type { PluginStats } from '../api/client.js';
import { MEMORY_RULE, MIN_CPUS, MIN_MEMORY_BYTES, formatBytes, parseMemory, type Resources } from '../common/resources.js';
import { client, collect, out, table, withClient } from './common.js';
import { envProblem } from '../common/limits.js';

/** How often `stats` reads, and how far apart the two reads of a CPU % are. */
const STATS_INTERVAL_MS = 1000;

interface StatsRow {
  id: string;
  cpuPercent: number;
  memoryBytes: number;
  memoryLimitBytes: number | null;
  pids: number;
}

/** CPU % of one core, as docker's: CPU time over wall time between two reads of the same task. */
function statsRows(now: PluginStats[], before: Map<string, PluginStats>): StatsRow[] {
  return now.map((s) => {
    const b = before.get(s.id);
    const wallNs = b?.readAtMs !== undefined && s.readAtMs !== undefined ? (s.readAtMs - b.readAtMs) * 1e6 : 0;
    const cpuNs = b ? s.cpuNs - b.cpuNs : 0;
    const cpuPercent = wallNs > 0 && cpuNs > 0 ? Math.round((cpuNs / wallNs) * 10_000) / 100 : 0;
    return { id: s.id, cpuPercent, memoryBytes: s.memoryBytes, memoryLimitBytes: s.memoryLimitBytes ?? null, pids: s.pids };
  });
}

function statsTable(rows: StatsRow[]): string {
  const lines = [['ID', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'PIDS']];
  for (const r of rows) {
    const limit = r.memoryLimitBytes;
    lines.push([
      r.id,
      `${r.cpuPercent.toFixed(2)}%`,
      `${formatBytes(r.memoryBytes)} / ${limit === null ? '-' : formatBytes(limit)}`,
      limit === null ? '-' : `${((r.memoryBytes / limit) * 100).toFixed(2)}%`,
      String(r.pids),
    ]);
  }
  return table(lines);
}

function memory(v: string): number {
  const n = parseMemory(v);
  if (n === undefined || n < MIN_MEMORY_BYTES) throw new InvalidArgumentError(MEMORY_RULE);
  return n;
}

function cpus(v: string): number {
  const n = Number(v);
  // The host's CPU count is plugind's to check: it may run on another host than this command.
  if (v.trim() === '' || !Number.isFinite(n) || n < MIN_CPUS) throw new InvalidArgumentError(`want a number of CPUs, at least ${MIN_CPUS}`);
  return n;
}

function pidsLimit(v: string): number {
  const n = Number(v);
  if (!/^(-1|\d+)$/.test(v.trim()) || n === 0 || !Number.isSafeInteger(n)) throw new InvalidArgumentError('want a whole number above 0, or -1 for none');
  return n;
}

/** --memory, --cpus and --pids-limit, as docker run and docker update take them. */
export function addResourceOptions(cmd: Command): Command {
  return cmd
    .option('--memory <size>', 'memory limit: 64m, 1g (b, k, m, g, t); the kernel kills the plugin past it (reported as oomKilled)', memory)
    .option('--cpus <n>', 'CPU time as cores, 0.5 for half of one', cpus)
    .option('--pids-limit <n>', 'most processes and threads at once (-1: none)', pidsLimit);
}

/** The limits among a verb's flags. */
export function resourcesFromFlags(o: { memory?: number; cpus?: number; pidsLimit?: number }): Resources {
  const r: Resources = {};
  if (o.memory !== undefined) r.memoryBytes = o.memory;
  if (o.cpus !== undefined) r.cpus = o.cpus;
  if (o.pidsLimit !== undefined) r.pidsLimit = o.pidsLimit;
  return r;
}

export function addOperateVerbs(program: Command): void {
  addResourceOptions(
    program
      .command('update <id>')
      .description("change a plugin's limits: a running plugin's at once (its cgroup), and for its next runs"),
  ).action(async (id: string, o: { memory?: number; cpus?: number; pidsLimit?: number }) => {
    const r = resourcesFromFlags(o);
    if (Object.keys(r).length === 0) throw new InvalidArgumentError(`plugin ${id}: nothing to update: give --memory, --cpus or --pids-limit`);
    await withClient(async (c) => {
      await c.update(id, r);
      process.stdout.write(`${id}\n`);
    });
  });
}

export function addStatsVerb(program: Command): void {
  program
    .command('stats [ids...]')
    .description("CPU %, memory and pids of running plugins (or of the ids given), refreshed each second until ^C, as docker stats")
    .addHelpText('after', '\nCPU % is of one core (200% is two cores busy), over the last second. Memory is the working set\n(usage less inactive file cache) and the limit set by run --memory or update ("-": none).')
    .option('--no-stream', 'print once and exit (reads twice, a second apart, for the CPU %)')
    .option('--json', 'an array of {"id","cpuPercent","memoryBytes","memoryLimitBytes","pids"}; streaming, one array per line')
    .action(async (ids: string[], o: { stream: boolean; json?: boolean }) => {
      const c = client();
      const stop = (): void => {
        c.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      try {
        let before = new Map((await c.stats(ids)).map((s) => [s.id, s]));
        for (;;) {
          await sleep(STATS_INTERVAL_MS);
          const now = await c.stats(ids);
          const rows = statsRows(now, before);
          const clear = o.stream && !o.json && process.stdout.isTTY ? '\x1b[H\x1b[J' : '';
          out(clear + (o.json ? JSON.stringify(rows) + '\n' : statsTable(rows)));
          if (!o.stream) return;
          before = new Map(now.map((s) => [s.id, s]));
        }
      } finally {
        process.off('SIGINT', stop);
        c.close();
      }
    });
}

export function addExecVerb(program: Command): void {
  program
    .command('exec <id> [command...]')
    .description("run a command in a running plugin's container, beside its own process; exits with the command's status")
    .addHelpText(
      'after',
      `
The command runs as the plugin's own process does (user, working dir, env, capabilities, cgroup),
with no stdin and no terminal; without one, /bin/sh (which then ends at once). Put the command after
--:   plugind exec ID -- ls -l /run
Its stdout and stderr go to this command's; ^C (or this command going away) kills it.`,
    )
    .option('--env <K=V>', 'environment variable over the plugin\'s own (repeatable)', collect, [] as string[])
    .action(async (id: string, command: string[], o: { env: string[] }) => {
      const envBad = envProblem(o.env);
      if (envBad) throw new InvalidArgumentError(envBad);
      const c = client();
      const stream = c.exec(id, command, o.env);
      const stop = (): void => {
        stream.close();
        process.exit(130);
      };
      process.once('SIGINT', stop);
      let status: number | undefined;
      try {
        for await (const m of stream) {
          if ('exitStatus' in m) {
            status = m.exitStatus;
            continue;
          }
          const target = m.stream === 'stderr' ? process.stderr : process.stdout;
          if (!target.write(m.data)) await new Promise((r) => target.once('drain', r));
        }
      } finally {
        process.off('SIGINT', stop);
        c.close();
      }
      if (status === undefined) throw new Error(`plugin ${id}: the exec ended without its exit status`);
      process.exitCode = status;
    });
}
