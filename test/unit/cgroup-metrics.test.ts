// The cgroup stats decoder on messages encoded with our own codecs, for both
// cgroup versions (this host has only one, so the integration test sees one).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CGROUP_V1_METRICS_TYPE, CGROUP_V2_METRICS_TYPE, decodeCgroupMetrics } from '../../src/containerd/index.js';
import { messageCodec } from '../../src/containerd/wire.js';

const MiB = 2 ** 20;
// uint64s past 2^53 as the codec takes them: 32-bit halves.
type Long = { low: number; high: number; unsigned: true };
// What cgroup v1 reports for no limit on 4 KiB pages: PAGE_COUNTER_MAX pages in bytes, 2^63 - 4096.
const V1_UNLIMITED: Long = { high: 0x7fff_ffff, low: 0xffff_f000, unsigned: true };
// containerd's reading of v2's "max": 2^64 - 1.
const V2_MAX: Long = { high: 0xffff_ffff, low: 0xffff_ffff, unsigned: true };

function v1(memory: { usage: number; limit: number | Long; totalInactiveFile: number }): Uint8Array {
  return messageCodec(CGROUP_V1_METRICS_TYPE).encode({
    pids: { current: 3 },
    cpu: { usage: { total: 1_234_567_890 } },
    memory: { totalInactiveFile: memory.totalInactiveFile, usage: { usage: memory.usage, limit: memory.limit } },
  });
}

function v2(memory: { usage: number; usageLimit: number | Long; inactiveFile: number }): Uint8Array {
  return messageCodec(CGROUP_V2_METRICS_TYPE).encode({ pids: { current: 2 }, cpu: { usageUsec: 1_500_000 }, memory });
}

test('cgroup v1: cpu in ns, working set, limit, pids', () => {
  const got = decodeCgroupMetrics('a', { typeUrl: CGROUP_V1_METRICS_TYPE, value: v1({ usage: 10 * MiB, limit: 64 * MiB, totalInactiveFile: 3 * MiB }) });
  assert.deepEqual(got, { id: 'a', cpuNs: 1_234_567_890, memoryBytes: 7 * MiB, memoryLimitBytes: 64 * MiB, pids: 3 });
});

test('cgroup v1: the page-rounded 2^63 of no limit reads as unlimited', () => {
  const got = decodeCgroupMetrics('a', { typeUrl: CGROUP_V1_METRICS_TYPE, value: v1({ usage: MiB, limit: V1_UNLIMITED, totalInactiveFile: 0 }) });
  assert.ok(got);
  assert.equal(got.memoryLimitBytes, undefined);
  assert.ok(!('memoryLimitBytes' in got), 'absent, not set to undefined');
  assert.equal(got.memoryBytes, MiB);
});

test('cgroup v2: usage_usec to ns, working set, limit, pids', () => {
  const got = decodeCgroupMetrics('b', { typeUrl: CGROUP_V2_METRICS_TYPE, value: v2({ usage: 20 * MiB, usageLimit: 128 * MiB, inactiveFile: 5 * MiB }) });
  assert.deepEqual(got, { id: 'b', cpuNs: 1_500_000_000, memoryBytes: 15 * MiB, memoryLimitBytes: 128 * MiB, pids: 2 });
});

test('cgroup v2: "max" reads as unlimited', () => {
  const got = decodeCgroupMetrics('b', { typeUrl: CGROUP_V2_METRICS_TYPE, value: v2({ usage: MiB, usageLimit: V2_MAX, inactiveFile: 0 }) });
  assert.ok(got);
  assert.equal(got.memoryLimitBytes, undefined);
});

test('the working set never goes below 0 (inactive file counted past usage)', () => {
  const one = decodeCgroupMetrics('a', { typeUrl: CGROUP_V1_METRICS_TYPE, value: v1({ usage: MiB, limit: 64 * MiB, totalInactiveFile: 2 * MiB }) });
  const two = decodeCgroupMetrics('b', { typeUrl: CGROUP_V2_METRICS_TYPE, value: v2({ usage: MiB, usageLimit: V2_MAX, inactiveFile: 2 * MiB }) });
  assert.equal(one?.memoryBytes, 0);
  assert.equal(two?.memoryBytes, 0);
});

test('a controller the stats lack reads as zeros', () => {
  const got = decodeCgroupMetrics('c', { typeUrl: CGROUP_V1_METRICS_TYPE, value: new Uint8Array() });
  assert.deepEqual(got, { id: 'c', cpuNs: 0, memoryBytes: 0, pids: 0 });
});

test('a type URL with a prefix is matched by its message name', () => {
  const got = decodeCgroupMetrics('b', { typeUrl: `types.example.com/${CGROUP_V2_METRICS_TYPE}`, value: v2({ usage: MiB, usageLimit: 64 * MiB, inactiveFile: 0 }) });
  assert.equal(got?.memoryLimitBytes, 64 * MiB);
});

test('an unknown type URL is skipped, not a crash', () => {
  assert.equal(decodeCgroupMetrics('w', { typeUrl: 'io.containerd.windows.hcs.v1.Stats', value: new Uint8Array([1, 2, 3]) }), undefined);
  assert.equal(decodeCgroupMetrics('w', { typeUrl: '', value: new Uint8Array() }), undefined);
});
