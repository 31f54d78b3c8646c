// Plugin output on a disk that fills up or loses its log dir (issue 11):
// plugind's data dir is on a tmpfs this file mounts (containerd's root is
// not). A blocking plugin waits and then resumes by itself, losing nothing;
// a non-blocking one drops and counts; a removed log dir is made again; a
// log dir that cannot be used ends in one error line and dropped output,
// never in a stalled plugin.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { fill, mountTmpfs, type Tmpfs } from '../helpers/tmpfs.js';
import { criContent } from '../helpers/log-lines.js';
import { leftovers, logText, metricsText, pluginsDir, startServed, sumSamples, until, type ServedRig } from '../helpers/serve.js';

const MIB = 1 << 20;
let disk: Tmpfs;
let rig: ServedRig;
before(async () => {
  disk = mountTmpfs(8);
  rig = await startServed('disk', { dataDir: join(disk.dir, 'plugind') });
});
after(async () => {
  try {
    // plugind, its FIFO keeper, the shims: everything holding the tmpfs goes first.
    await rig?.close();
  } finally {
    disk?.unmount();
  }
});

const logsDir = (id: string): string => join(pluginsDir(rig.dataDir, rig.namespace), 'logs', id);

/** The plugin's bytes of a stream kept in its log files (their CRI records' content). */
function onDisk(id: string, stream: 'stdout' | 'stderr' = 'stdout'): number {
  const dir = logsDir(id);
  if (!existsSync(dir)) return 0;
  return criContent(dir, stream).length;
}

/** A counter summed over shards (and any labels not given). */
async function counter(name: string, labels: Record<string, string> = {}): Promise<number> {
  return sumSamples(await metricsText(rig.s.metricsUrl), name, labels);
}

interface LogLine {
  level: number;
  plugin?: string;
  stream?: string;
  errno?: string;
  msg: string;
}

const INFO = 30;
const WARN = 40;
const ERROR = 50;

/** plugind's log lines about one plugin at one pino level. */
function linesAbout(id: string, level: number): LogLine[] {
  return rig.s.logs
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine)
    .filter((l) => l.plugin === id && l.level === level);
}

/** The lines of a level about a plugin, once at least one has arrived (plugind's log is a pipe behind its metrics). */
async function awaitLines(id: string, level: number): Promise<LogLine[]> {
  await until(`a level ${level} line about ${id}`, () => linesAbout(id, level).length > 0);
  return linesAbout(id, level);
}

/** What busybox `seq 1 n` prints: its size and SHA-256. */
function seqOutput(n: number): { bytes: number; sha256: string } {
  const h = createHash('sha256');
  let bytes = 0;
  let part = '';
  for (let i = 1; i <= n; i++) {
    part += `${i}\n`;
    if (part.length >= 1 << 16 || i === n) {
      h.update(part);
      bytes += part.length;
      part = '';
    }
  }
  return { bytes, sha256: h.digest('hex') };
}

/**
 * Runs a plugin that prints numbered lines for ever into 16 KiB files, and
 * removes its log dir once it has output; returns plugind's count of errno
 * from before.
 */
async function removeLogDirUnder(id: string, errno: string): Promise<number> {
  const before = await counter('plugind_log_write_errors_total', { errno });
  const args = ['sh', '-c', 'i=0; while :; do echo "line $i"; i=$((i+1)); usleep 1000; done'];
  await rig.s.client.run(id, { rootfs: rig.h.rootfs, args, log: { maxSize: 16 << 10, maxFiles: 2 } });
  await until('output', () => onDisk(id) > 0);
  rmSync(logsDir(id), { recursive: true, force: true });
  return before;
}

test('a blocking plugin on a full disk waits, is counted and logged once, and resumes by itself with every byte', async (t) => {
  const c = rig.s.client;
  const id = 'full-block';
  // A million lines: ≈ 7 MB of output, ≈ 47 MB of CRI records (about 40 bytes of framing a line).
  const n = 1_000_000;
  const want = seqOutput(n);
  assert.ok(want.bytes + n * 39 > 40 * MIB);
  await c.run(id, { rootfs: rig.h.rootfs, args: ['seq', '1', String(n)], log: { maxSize: 64 * MIB, maxFiles: 1 } });
  await until('a write to fail with ENOSPC', async () => (await counter('plugind_log_write_errors_total', { errno: 'ENOSPC' })) > 0);
  const stalled = onDisk(id);
  await sleep(1500);
  assert.equal(onDisk(id), stalled, 'output stopped growing');
  assert.ok(stalled < 8 * MIB, `${stalled} bytes on an 8 MiB tmpfs`);
  assert.equal((await c.inspect(id)).state, 'running');
  assert.equal((await fetch(rig.s.metricsUrl.replace('/metrics', '/readyz'))).status, 200, '/readyz is about containerd and shards');
  const warned = await awaitLines(id, WARN);
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.deepEqual([warned[0]?.stream, warned[0]?.errno], ['stdout', 'ENOSPC']);

  disk.resize(128);
  await until('the plugin to finish', async () => (await c.inspect(id)).state === 'stopped', 60_000);
  assert.equal((await c.inspect(id)).exitStatus, 0);
  const kept = criContent(logsDir(id), 'stdout');
  assert.equal(kept.length, want.bytes);
  assert.equal(createHash('sha256').update(kept).digest('hex'), want.sha256, 'every line once, in order');
  const recovered = (await awaitLines(id, INFO)).filter((l) => l.errno === 'ENOSPC');
  assert.equal(recovered.length, 1, 'one line when writes work again');
  assert.equal(linesAbout(id, WARN).length, 1, 'still one warn line');
  t.diagnostic(`stalled at ${stalled} of ${want.bytes} bytes; plugind said: ${[...warned, ...recovered].map((l) => l.msg).join(' / ')}`);
  await c.remove(id);
});

test('a non-blocking plugin on a full disk is never blocked: what the file lacks is counted as dropped', async (t) => {
  const c = rig.s.client;
  const id = 'full-drop';
  const n = 24 * MIB;
  // Full before the plugin writes a byte: otherwise its output is dropped
  // for the disk's slowness alone, and the disk may never fill.
  disk.resize(8);
  const filler = join(rig.dataDir, 'filler');
  fill(filler);
  const read0 = await counter('plugind_stdio_bytes_total', { stream: 'stdout' });
  const dropped0 = await counter('plugind_stdio_dropped_bytes_total', { stream: 'stdout' });
  const errors0 = await counter('plugind_log_write_errors_total', { errno: 'ENOSPC' });
  // Writes n bytes, then stays up so that the check below is of a running plugin.
  const args = ['sh', '-c', `head -c ${n} /dev/zero; exec sleep 3600`];
  await c.run(id, { rootfs: rig.h.rootfs, args, log: { mode: 'non-blocking', bufferSize: 64 << 10, maxSize: 64 * MIB, maxFiles: 1 } });
  await until('plugind to read all of it', async () => (await counter('plugind_stdio_bytes_total', { stream: 'stdout' })) - read0 === n, 60_000);
  assert.equal((await c.inspect(id)).state, 'running');
  assert.ok(onDisk(id) < 8 * MIB, `${onDisk(id)} bytes kept on an 8 MiB tmpfs`);
  assert.ok((await counter('plugind_log_write_errors_total', { errno: 'ENOSPC' })) > errors0);
  assert.equal((await awaitLines(id, WARN)).length, 1);

  // With room again, what the buffer held reaches the file.
  disk.resize(128);
  const accounted = async (): Promise<number> => onDisk(id) + (await counter('plugind_stdio_dropped_bytes_total', { stream: 'stdout' })) - dropped0;
  await until('writes to work again', () => linesAbout(id, INFO).some((l) => l.errno === 'ENOSPC'));
  await c.stop(id, 0);
  assert.equal(await accounted(), n, `kept ${onDisk(id)}: kept + dropped is what was written`);
  t.diagnostic(`${n} bytes written, ${onDisk(id)} kept, the rest counted as dropped`);
  await c.remove(id);
  rmSync(filler);
});

test('a log dir removed under a running plugin is made again at the next rotation, and output goes on', async () => {
  const c = rig.s.client;
  const id = 'dir-gone';
  const errors0 = await removeLogDirUnder(id, 'ENOENT');
  await until('the log dir to come back', () => existsSync(join(logsDir(id), 'plugin.log')));
  await until('ENOENT to be counted', async () => (await counter('plugind_log_write_errors_total', { errno: 'ENOENT' })) === errors0 + 1);
  const warned = await awaitLines(id, WARN);
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.equal(warned[0]?.errno, 'ENOENT');
  const lastLine = (): number => Number(/(\d+)$/.exec(criContent(logsDir(id), 'stdout').toString().trimEnd())?.[1] ?? -1);
  const before = lastLine();
  await until('output to go on in the new dir', () => lastLine() > before + 100);
  await c.stop(id, 0);
  // What was written after the dir came back is whole: consecutive lines
  // (the first may be the tail of a line rotated away).
  const numbers = (await logText(c, id, 'stdout'))
    .trimEnd()
    .split('\n')
    .slice(1)
    .map((l) => Number(/^line (\d+)$/.exec(l)?.[1]));
  assert.ok(numbers.length > 100);
  numbers.forEach((v, i) => assert.equal(v, (numbers[0] as number) + i, `line ${i} of the kept output`));
  await c.remove(id);
});

test('a log dir that cannot be used ends in one error line and counted drops, and the plugin runs on', async (t) => {
  const c = rig.s.client;
  const id = 'dir-file';
  const other0 = await removeLogDirUnder(id, 'other');
  // A file where the log dir was: the next rotation fails with ENOTDIR, which no retry mends.
  writeFileSync(logsDir(id), '');
  await awaitLines(id, ERROR);
  assert.equal((await counter('plugind_log_write_errors_total', { errno: 'other' })) - other0, 1);
  const dropped = async (): Promise<number> => counter('plugind_stdio_dropped_bytes_total', { stream: 'stdout' });
  const d0 = await dropped();
  await until('output to be read and dropped', async () => (await dropped()) > d0 + 4096);
  assert.equal((await c.inspect(id)).state, 'running');
  assert.equal(linesAbout(id, ERROR).length, 1, 'logged once');
  t.diagnostic(`plugind said: ${linesAbout(id, ERROR)[0]?.msg}`);
  await c.stop(id, 0);
  await c.remove(id);
  assert.deepEqual(await leftovers(rig), []);
});
