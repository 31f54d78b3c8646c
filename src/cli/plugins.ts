// The verbs on plugins that exist: ls (ps), inspect, kill, stop, rm, logs,
// events; docker's short flags and several ids where docker takes them.
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Plugin } from '../api/client.js';
import { parseTimeArg } from '../common/duration.js';
import { MAX_STOP_SECONDS, ago, client, collect, eachId, int, out, seconds, table, withClient } from './common.js';

export function pluginJson(p: Plugin): Record<string, unknown> {
  const o: Record<string, unknown> = { id: p.id, state: p.state, pid: p.pid, shard: p.shard, createdAt: p.createdAt?.toISOString() ?? null };
  if (p.exitStatus !== undefined) {
    o.exitStatus = p.exitStatus;
    o.exitedAt = p.exitedAt?.toISOString() ?? null;
  }
  if (p.oomKilled) o.oomKilled = true;
  o.restart = p.restart;
  o.restartCount = p.restartCount;
  if (p.nextRestartAt) o.nextRestartAt = p.nextRestartAt.toISOString();
  o.autoRemove = p.autoRemove;
  o.runtimeBinary = p.runtimeBinary;
  if (p.image) o.image = p.image;
  if (p.resources) o.resources = p.resources;
  o.logPath = p.logPath;
  if (p.healthCheck) o.healthCheck = p.healthCheck;
  if (p.health) {
    o.health = {
      status: p.health.status,
      failingStreak: p.health.failingStreak,
      log: p.health.log.map((r) => ({ start: r.start?.toISOString() ?? null, end: r.end?.toISOString() ?? null, exitCode: r.exitCode, output: r.output })),
    };
  }
  // Docker plugins only: other plugins keep the shape they had.
  if (p.bundle) {
    o.socket = p.bundle.socket;
    o.interface = p.bundle.interface;
    if (p.bundle.propagatedMount) o.propagatedMount = p.bundle.propagatedMount;
    o.ready = p.bundle.ready;
    o.privileges = p.bundle.privileges;
  }
  return o;
}

const STATES = ['created', 'running', 'stopped', 'paused'];

/** ls --filter KEY=VALUE, docker's: state= (repeatable: any of them), id= (an id or its prefix). */
function lsFilter(filters: string[]): (p: Plugin) => boolean {
  const states: string[] = [];
  const ids: string[] = [];
  for (const f of filters) {
    const eq = f.indexOf('=');
    const key = f.slice(0, eq);
    const value = f.slice(eq + 1);
    if (eq < 1 || value === '') throw new InvalidArgumentError(`--filter ${JSON.stringify(f)}: want KEY=VALUE, with state= or id=`);
    if (key === 'state' || key === 'status') {
      if (!STATES.includes(value)) throw new InvalidArgumentError(`--filter ${f}: want a state of ${STATES.join(', ')}`);
      states.push(value);
    } else if (key === 'id' || key === 'name') {
      ids.push(value);
    } else {
      throw new InvalidArgumentError(`--filter ${f}: unknown filter ${JSON.stringify(key)}; want state= or id=`);
    }
  }
  return (p) => (states.length === 0 || states.includes(p.state)) && (ids.length === 0 || ids.some((x) => p.id.startsWith(x)));
}

function lsTable(plugins: Plugin[]): string {
  // READY only when a Docker plugin is listed: a host without one sees the table it always did.
  const ready = plugins.some((p) => p.bundle);
  const rows = [['ID', 'STATE', 'PID', 'SHARD', 'CREATED', 'EXIT', ...(ready ? ['READY'] : [])]];
  const now = Date.now();
  for (const p of plugins) {
    // As docker ps says it: "running (healthy)".
    const state = p.health && p.state === 'running' ? `${p.state} (${p.health.status})` : p.state;
    const row = [p.id, state, String(p.pid || '-'), String(p.shard), ago(p.createdAt, now), p.exitStatus === undefined ? '-' : String(p.exitStatus)];
    if (ready) row.push(p.bundle ? (p.bundle.ready ? 'yes' : 'no') : '-');
    rows.push(row);
  }
  return table(rows);
}

export function addPluginVerbs(program: Command): void {
  for (const name of ['ls', 'ps']) {
    program
      .command(name)
      .description(name === 'ls' ? 'list plugins (alias: ps)' : 'list plugins (as ls)')
      .option('-q, --quiet', 'ids only, one a line')
      .option('--filter <KEY=VALUE>', 'state=running|created|stopped|paused, id=ID or a prefix (repeatable; states are or-ed, the rest and-ed)', collect, [] as string[])
      .addOption(new Option('--format <format>', 'table (times as "3 minutes ago") or json (an array, times RFC 3339)').choices(['table', 'json']))
      .option('--json', 'as --format json')
      .action(async (o: { quiet?: boolean; filter: string[]; format?: string; json?: boolean }) => {
        const keep = lsFilter(o.filter);
        await withClient(async (c) => {
          const plugins = (await c.list()).filter(keep);
          if (o.quiet) return void out(plugins.map((p) => `${p.id}\n`).join(''));
          if (o.json || o.format === 'json') return void out(JSON.stringify(plugins.map(pluginJson)) + '\n');
          out(lsTable(plugins));
        });
      });
  }

  program
    .command('inspect <ids...>')
    .description('show plugins: a table each, or with --json one object (one id) or an array (several)')
    .option('--json', 'JSON')
    .action(async (ids: string[], o: { json?: boolean }) => {
      await withClient(async (c) => {
        const found: Record<string, unknown>[] = [];
        await eachId(ids, async (id) => {
          found.push(pluginJson(await c.inspect(id)));
        });
        if (o.json) return void out(JSON.stringify(ids.length === 1 ? (found[0] ?? null) : found) + '\n');
        out(found.map((p) => table(Object.entries(p).map(([k, v]) => [k, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)]))).join('\n'));
      });
    });

  program
    .command('kill <ids...>')
    .description('send a signal (default KILL); prints each id signalled')
    .option('-s, --signal <sig>', 'name (TERM, HUP) or number', 'KILL')
    .action(async (ids: string[], o: { signal: string }) => {
      await withClient((c) =>
        eachId(ids, async (id) => {
          const delivered = await c.signal(id, o.signal);
          if (!delivered) throw new Error(`plugin ${id} had already exited`);
          out(`${id}\n`);
        }),
      );
    });

  program
    .command('stop <ids...>')
    .description('SIGTERM, then SIGKILL after --timeout; returns when each has exited, printing its id')
    .option('-t, --timeout <seconds>', `before SIGKILL (0 to ${MAX_STOP_SECONDS})`, seconds, 10)
    .action(async (ids: string[], o: { timeout: number }) => {
      await withClient((c) =>
        eachId(ids, async (id) => {
          await c.stop(id, o.timeout);
          out(`${id}\n`);
        }),
      );
    });

  program
    .command('rm <ids...>')
    .description('remove stopped plugins (container and logs), printing each id')
    .option('-f, --force', 'kill one first if it runs')
    .action(async (ids: string[], o: { force?: boolean }) => {
      await withClient((c) =>
        eachId(ids, async (id) => {
          await c.remove(id, Boolean(o.force));
          out(`${id}\n`);
        }),
      );
    });

  program
    .command('logs <id>')
    .description("print a plugin's output as it wrote it: stdout to stdout, stderr to stderr (both unless --stream)")
    .addHelpText(
      'after',
      `
The log file is in the CRI format (kubelet's, crictl's, fluent-bit's): inspect --json gives its logPath.
Output written by a plugind before that format (raw files) is printed first, timed by its file's mtime.`,
    )
    .option('-f, --follow', 'keep printing new output until the plugin exits; if plugind goes away first, exit 1 saying "plugind went away" (no reconnect: run it again)')
    .option('-n, --tail <lines>', 'only the last LINES lines, both streams counted ("all": every line)', tailLines)
    .option('--tail-bytes <bytes>', 'only the last BYTES of each stream', int('--tail-bytes', 0, Number.MAX_SAFE_INTEGER))
    .option('-t, --timestamps', 'start each line with its time (RFC 3339, ns)')
    .option('--since <time>', 'only output written since: a duration back (10m, 90s) or an RFC 3339 time', timeArg)
    .option('--until <time>', 'only output written before: a duration back or an RFC 3339 time', timeArg)
    .addOption(new Option('--stream <stream>', 'only this stream').choices(['stdout', 'stderr']))
    .action(async (id: string, o: { follow?: boolean; stream?: 'stdout' | 'stderr'; tail?: number; tailBytes?: number; timestamps?: boolean; since?: Date; until?: Date }) => {
      const c = client();
      const opts: Parameters<typeof c.logs>[1] = { follow: Boolean(o.follow), timestamps: Boolean(o.timestamps) };
      if (o.stream) opts.stream = o.stream;
      if (o.tail !== undefined && Number.isFinite(o.tail)) opts.tailLines = o.tail;
      if (o.tailBytes !== undefined) opts.tail = o.tailBytes;
      if (o.since) opts.since = o.since;
      if (o.until) opts.until = o.until;
      const stream = c.logs(id, opts);
      // ^C ends the stream itself (closing the client would leave the call open) and exits 0.
      const stop = (): void => stream.close();
      process.once('SIGINT', stop);
      try {
        for await (const chunk of stream) {
          const target = chunk.stream === 'stderr' ? process.stderr : process.stdout;
          if (!target.write(chunk.data)) await new Promise((r) => target.once('drain', r));
        }
      } finally {
        process.off('SIGINT', stop);
        c.close();
      }
    });

  program
    .command('events')
    .description('print plugin exits as they happen')
    .addHelpText(
      'after',
      '\nRuns until ^C (exit 0), or until --until. If plugind goes away (stopped, killed), it exits 1 saying\n' +
        '"plugind went away"; it does not reconnect, so that a gap is never silent. --since replays the exits\n' +
        'plugind still remembers (the last 1,000 it told since it started) first.',
    )
    .option('--json', 'one JSON object per line')
    .option('-f, --filter <id=ID>', "only this plugin's exits (repeatable)", collect, [] as string[])
    .option('--since <time>', 'first the remembered exits told since: a duration back (10m, 90s) or an RFC 3339 time', timeArg)
    .option('--until <time>', 'stop at this time (a duration back from now, or an RFC 3339 time, which may be ahead)', timeArg)
    .action(async (o: { json?: boolean; filter: string[]; since?: Date; until?: Date }) => {
      const ids = o.filter.map((f) => {
        const m = /^(id|name)=(.+)$/.exec(f);
        if (!m) throw new InvalidArgumentError(`--filter ${JSON.stringify(f)}: want id=ID`);
        return m[2] as string;
      });
      const c = client();
      process.once('SIGINT', () => {
        c.close();
        process.exit(0);
      });
      const options: { ids: string[]; since?: Date; until?: Date } = { ids };
      if (o.since) options.since = o.since;
      if (o.until) options.until = o.until;
      try {
        for await (const e of c.events(options)) {
          const at = e.exitedAt?.toISOString() ?? null;
          const oom = e.oomKilled ? { oomKilled: true } : {};
          out(o.json ? JSON.stringify({ id: e.id, pid: e.pid, exitStatus: e.exitStatus, exitedAt: at, ...oom }) + '\n' : `${at} ${e.id} exited ${e.exitStatus} (pid ${e.pid})${e.oomKilled ? ' oom-killed' : ''}\n`);
        }
      } finally {
        c.close();
      }
    });
}

function tailLines(v: string): number {
  if (v === 'all') return Infinity;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('want a number of lines, or all');
  return n;
}

function timeArg(v: string): Date {
  const d = parseTimeArg(v);
  if (!d) throw new InvalidArgumentError('want a duration back from now (10m, 1h30m, 90s) or an RFC 3339 time (2026-12-04T10:00:00Z)');
  return d;
}
