// A task's cgroup stats (the Any in a Tasks.Metrics answer) as the few plain
// numbers plugind reports, the same for cgroup v1 and v2 hosts.
import { typeName, type Any } from './any.js';
import { messageCodec } from './wire.js';

export const CGROUP_V1_METRICS_TYPE = 'io.containerd.cgroups.v1.Metrics';
export const CGROUP_V2_METRICS_TYPE = 'io.containerd.cgroups.v2.Metrics';

export interface TaskMetrics {
  /** The task's (container's) id. */
  id: string;
  /** CPU time used by every process of the task so far, in ns. */
  cpuNs: number;
  /**
   * Working set, as docker stats and the kubelet compute it: usage less
   * the inactive page cache the kernel can drop under pressure.
   */
  memoryBytes: number;
  /** Undefined when the task has no memory limit. */
  memoryLimitBytes?: number;
  /** Processes and threads now in the task. */
  pids: number;
  /** When containerd read the cgroup (ms since the epoch, sub-ms precision), as Tasks.Metrics says. */
  readAtMs?: number;
}

// The kernel has no "unlimited" for a limit: v1 reports PAGE_COUNTER_MAX in
// bytes (2^63 less a page), and containerd turns v2's "max" into 2^64-1.
// No real limit comes near 2^62.
const UNLIMITED_FROM = 2 ** 62;

/** The counters both versions have, in the units of TaskMetrics. */
interface Counters {
  cpuNs: number;
  memoryUsage: number;
  inactiveFile: number;
  /** 0 is what v2 gives when memory.max could not be read: no limit known. */
  memoryLimit: number;
  pids: number;
}

function taskMetrics(id: string, c: Counters): TaskMetrics {
  const out: TaskMetrics = { id, cpuNs: c.cpuNs, memoryBytes: Math.max(0, c.memoryUsage - c.inactiveFile), pids: c.pids };
  if (c.memoryLimit > 0 && c.memoryLimit < UNLIMITED_FROM) out.memoryLimitBytes = c.memoryLimit;
  return out;
}

// Decoded with defaults, so an absent sub-message is null and an absent
// number 0: a controller the host lacks reads as zeros, not an error.
interface WireV1 {
  pids: { current: number } | null;
  cpu: { usage: { total: number } | null } | null;
  memory: { totalInactiveFile: number; usage: { limit: number; usage: number } | null } | null;
}

interface WireV2 {
  pids: { current: number } | null;
  cpu: { usageUsec: number } | null;
  memory: { inactiveFile: number; usage: number; usageLimit: number } | null;
}

function fromV1(id: string, m: WireV1): TaskMetrics {
  return taskMetrics(id, {
    cpuNs: m.cpu?.usage?.total ?? 0,
    memoryUsage: m.memory?.usage?.usage ?? 0,
    // total_: over the task's cgroup and any below it, as usage is.
    inactiveFile: m.memory?.totalInactiveFile ?? 0,
    memoryLimit: m.memory?.usage?.limit ?? 0,
    pids: m.pids?.current ?? 0,
  });
}

function fromV2(id: string, m: WireV2): TaskMetrics {
  return taskMetrics(id, {
    cpuNs: (m.cpu?.usageUsec ?? 0) * 1000,
    memoryUsage: m.memory?.usage ?? 0,
    inactiveFile: m.memory?.inactiveFile ?? 0,
    memoryLimit: m.memory?.usageLimit ?? 0,
    pids: m.pids?.current ?? 0,
  });
}

/**
 * The metrics of task `id` from a Metric's data; undefined for a type this
 * does not know (another runtime's, say), which the caller skips. Accepts the
 * bare message name, as containerd sends it, or a URL ending in it.
 */
export function decodeCgroupMetrics(id: string, data: Any): TaskMetrics | undefined {
  switch (typeName(data.typeUrl)) {
    case CGROUP_V1_METRICS_TYPE:
      return fromV1(id, messageCodec(CGROUP_V1_METRICS_TYPE).decode(data.value) as unknown as WireV1);
    case CGROUP_V2_METRICS_TYPE:
      return fromV2(id, messageCodec(CGROUP_V2_METRICS_TYPE).decode(data.value) as unknown as WireV2);
    default:
      return undefined;
  }
}
