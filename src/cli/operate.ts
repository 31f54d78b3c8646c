// The verbs that operate running plugins: update (limits), stats and exec,
// and the limit flags `run` shares with update.
import { InvalidArgumentError, type Command } from 'commander';
import { MEMORY_RULE, MIN_CPUS, MIN_MEMORY_BYTES, parseMemory, type Resources } from '../common/resources.js';
import { addressOption, withClient } from './common.js';

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
      .description("change a plugin's limits: a running plugin's at once (its cgroup), and for its next runs")
      .addOption(addressOption()),
  ).action(async (id: string, o: { memory?: number; cpus?: number; pidsLimit?: number; address: string }) => {
    const r = resourcesFromFlags(o);
    if (Object.keys(r).length === 0) throw new InvalidArgumentError(`plugin ${id}: nothing to update: give --memory, --cpus or --pids-limit`);
    await withClient(o, async (c) => {
      await c.update(id, r);
      process.stdout.write(`${id}\n`);
    });
  });
}
