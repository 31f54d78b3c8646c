// A plugin's limits, in docker's names and units: --memory (bytes, with a
// b/k/m/g/t suffix), --cpus (cores, a decimal) and --pids-limit. The CLI
// parses the units; the service checks the values again, as an API client
// may send anything, and both name the flag in their errors.
import { availableParallelism } from 'node:os';

export interface Resources {
  /** Memory limit in bytes (cgroup memory.limit_in_bytes / memory.max). */
  memoryBytes?: number;
  /** CPU time as cores: quota = cpus × period. */
  cpus?: number;
  /** Most tasks (processes and threads) at once; -1 takes a limit away. */
  pidsLimit?: number;
}

/** docker's floor: below it a plugin is killed before its runtime has set up. */
export const MIN_MEMORY_BYTES = 6 << 20;
/** The CFS period plugind sets, as docker's --cpus does (100 ms). */
export const CPU_PERIOD_US = 100_000;
/** The kernel's smallest quota is 1 ms: 0.01 of a 100 ms period. */
export const MIN_CPUS = 0.01;

const UNITS: Record<string, number> = { '': 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** `64m`, `1g`, `512k`, `1048576`: docker's RAMInBytes (binary units, an optional b or ib after them). */
export function parseMemory(v: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$/i.exec(v);
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * (UNITS[(m[2] ?? '').toLowerCase()] ?? NaN));
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, '')}${units[i]}`;
}

export const MEMORY_RULE = `want a size like 64m (b, k, m, g, t), at least ${MIN_MEMORY_BYTES >> 20}m`;

export function hostCpus(): number {
  return availableParallelism();
}

/**
 * The problem with these limits, as a message naming the flag, or
 * undefined when they are fine. cpus may not exceed the host's CPUs.
 */
export function resourcesProblem(r: Resources, cpusOnHost = hostCpus()): string | undefined {
  const { memoryBytes: mem, cpus, pidsLimit: pids } = r;
  if (mem !== undefined && (!Number.isSafeInteger(mem) || mem < MIN_MEMORY_BYTES)) return `--memory ${String(mem)}: ${MEMORY_RULE}`;
  if (cpus !== undefined && (!Number.isFinite(cpus) || cpus < MIN_CPUS || cpus > cpusOnHost)) {
    return `--cpus ${String(cpus)}: want a number of CPUs from ${MIN_CPUS} to ${cpusOnHost} (this host's)`;
  }
  if (pids !== undefined && (!Number.isSafeInteger(pids) || (pids < 1 && pids !== -1))) return `--pids-limit ${String(pids)}: want a whole number above 0, or -1 for none`;
  return undefined;
}

/** The runtime spec's linux.resources for these limits (only what is set). */
export function linuxResources(r: Resources): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (r.memoryBytes !== undefined) out.memory = { limit: r.memoryBytes };
  if (r.cpus !== undefined) out.cpu = { quota: Math.round(r.cpus * CPU_PERIOD_US), period: CPU_PERIOD_US };
  if (r.pidsLimit !== undefined) out.pids = { limit: r.pidsLimit };
  return out;
}

/** next over prev, field by field; a pids limit of -1 is kept (it says "none" to the runtime). */
export function mergeResources(prev: Resources, next: Resources): Resources {
  const out: Resources = { ...prev };
  if (next.memoryBytes !== undefined) out.memoryBytes = next.memoryBytes;
  if (next.cpus !== undefined) out.cpus = next.cpus;
  if (next.pidsLimit !== undefined) out.pidsLimit = next.pidsLimit;
  return out;
}

export function hasResources(r: Resources | undefined): r is Resources {
  return r !== undefined && (r.memoryBytes !== undefined || r.cpus !== undefined || r.pidsLimit !== undefined);
}

/** The limits of a message or object, only the fields set (a wire message carries more). */
export function pickResources(m: Resources | null | undefined): Resources {
  const r: Resources = {};
  if (typeof m?.memoryBytes === 'number') r.memoryBytes = m.memoryBytes;
  if (typeof m?.cpus === 'number') r.cpus = m.cpus;
  if (typeof m?.pidsLimit === 'number') r.pidsLimit = m.pidsLimit;
  return r;
}
