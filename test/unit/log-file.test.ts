// Plugin log files without containerd: exact rotation, a follower that
// reads across rotations without losing or repeating a byte, and what a
// file does when its disk is full or its dir is gone.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { RotatingLogFile, makeLogDir, type RotationOptions, type WriteFailure, type WriteRecovery } from '../../src/executor/log-file.js';
import { readLog } from '../../src/executor/log-reader.js';
import { fill, mountTmpfs } from '../helpers/tmpfs.js';

async function drain(it: AsyncIterable<Buffer>): Promise<string> {
  let s = '';
  for await (const b of it) s += b.toString();
  return s;
}

test('rotation keeps maxFiles, each file at most maxSize and made of whole lines', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-log-'));
  try {
    const f = new RotatingLogFile(dir, 'stdout', { maxSize: 100, maxFiles: 3 });
    await once(f, 'ready');
    let all = '';
    for (let i = 0; i < 50; i += 2) {
      // Two lines a write: a file rotates between them too.
      const lines = `line ${String(i).padStart(3, '0')}\nline ${String(i + 1).padStart(3, '0')}\n`;
      all += lines;
      f.write(Buffer.from(lines));
    }
    f.end();
    await once(f, 'close');
    assert.deepEqual(readdirSync(dir).sort(), ['stdout.log', 'stdout.log.1', 'stdout.log.2']);
    // 11 lines of 9 bytes: the 12th would pass 100, so it starts the next file.
    for (const f of ['stdout.log.1', 'stdout.log.2']) assert.equal(statSync(join(dir, f)).size, 99, f);
    const kept = await drain(readLog(dir, 'stdout'));
    assert.equal(kept, all.slice(all.length - kept.length));
    // 50 lines: 4 files of 11 and a live one of 6; the oldest two were dropped.
    assert.equal(kept.length, (11 + 11 + 6) * 9);
    assert.equal(await drain(readLog(dir, 'stdout', { tail: 9 })), 'line 049\n');
    assert.equal(await drain(readLog(dir, 'stdout', { tail: 0 })), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a write of many records larger than the limit is split between files, direct or queued', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-log-'));
  try {
    const f = new RotatingLogFile(dir, 'big', { maxSize: 100, maxFiles: 10 });
    await once(f, 'ready');
    // 30 lines of 9 bytes in one buffer, then a record longer than the limit with lines after it.
    const lines = Array.from({ length: 30 }, (_, i) => `line ${String(i).padStart(3, '0')}\n`).join('');
    const long = `${'x'.repeat(150)}\nafter 01\nafter 02\n`;
    f.writeNow(Buffer.from(lines));
    f.writeNow([Buffer.from(long.slice(0, 40)), Buffer.from(long.slice(40))]);
    f.end();
    await once(f, 'close');
    const names = readdirSync(dir).sort((a, b) => Number(a.split('.')[2] ?? 0) - Number(b.split('.')[2] ?? 0));
    const sizes = names.map((n) => statSync(join(dir, n)).size);
    // Live file, then the newest rotated first: 11 + 11 + 8 lines, the long record alone, the two after it.
    assert.deepEqual(sizes, [18, 151, 72, 99, 99]);
    for (const n of names) assert.ok(readFileSync(join(dir, n), 'latin1').endsWith('\n'), `${n} ends between records`);
    assert.equal(await drain(readLog(dir, 'big')), lines + long);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a follower sees every byte across rotations and ends when the file closes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-log-'));
  try {
    const f = new RotatingLogFile(dir, 'stderr', { maxSize: 64, maxFiles: 1000 });
    await once(f, 'ready');
    f.write(Buffer.from('before-follow\n'));
    await sleep(10);
    const followed = drain(readLog(dir, 'stderr', { follow: true, live: f }));
    let all = 'before-follow\n';
    for (let i = 0; i < 200; i++) {
      const s = `chunk-${i}\n`;
      all += s;
      f.write(Buffer.from(s));
      if (i % 20 === 0) await sleep(1);
    }
    f.end();
    assert.equal(await followed, all);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a follower stops when its signal aborts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-log-'));
  try {
    const f = new RotatingLogFile(dir, 'stdout');
    await once(f, 'ready');
    const ac = new AbortController();
    const followed = drain(readLog(dir, 'stdout', { follow: true, live: f, signal: ac.signal }));
    f.write(Buffer.from('x\n'));
    await sleep(20);
    ac.abort();
    assert.equal(await followed, 'x\n');
    f.destroy();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A file whose write failures and recoveries are recorded. */
function watched(dir: string, rotation: RotationOptions): { f: RotatingLogFile; failures: WriteFailure[]; recoveries: WriteRecovery[] } {
  const f = new RotatingLogFile(dir, 'stdout', rotation);
  const failures: WriteFailure[] = [];
  const recoveries: WriteRecovery[] = [];
  f.writeHooks = { failed: (x) => failures.push(x), recovered: (x) => recoveries.push(x) };
  return { f, failures, recoveries };
}

/** n bytes that differ from their neighbours, so that a byte lost or written twice shows. */
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 8)) & 0xff;
  return b;
}

test('on a full disk a file waits for room, then writes every byte once', async () => {
  const disk = mountTmpfs(1);
  try {
    const { f, failures, recoveries } = watched(disk.dir, { maxSize: 64 << 20 });
    await once(f, 'ready');
    const all = pattern(3 << 20);
    // Odd sizes, so that short writes end mid-chunk.
    for (let at = 0; at < all.length; at += 77_777) f.write(all.subarray(at, at + 77_777));
    while (failures.length < 3) await sleep(20);
    assert.ok(failures.every((x) => x.errno === 'ENOSPC' && x.action === 'retry'));
    assert.deepEqual(
      failures.map((x) => x.first),
      [true, ...failures.slice(1).map(() => false)],
    );
    assert.ok(f.failing);
    disk.resize(8);
    f.end();
    await once(f, 'close');
    assert.ok(readFileSync(join(disk.dir, 'stdout.log')).equals(all));
    assert.equal(recoveries.length, 1);
    assert.equal(recoveries[0]?.code, 'ENOSPC');
    assert.ok((recoveries[0]?.attempts ?? 0) >= 3);
  } finally {
    disk.unmount();
  }
});

test('a file destroyed while it waits for room stops retrying and closes its fd', async () => {
  const disk = mountTmpfs(1);
  try {
    fill(join(disk.dir, 'filler'));
    const fds: number[] = [];
    const f = new RotatingLogFile(disk.dir, 'stdout', {}, { fdHooks: { opened: (fd) => fds.push(fd), closing: (fd) => fds.push(-fd) } });
    const failures: WriteFailure[] = [];
    f.writeHooks = { failed: (x) => failures.push(x) };
    await once(f, 'ready');
    f.write(Buffer.from('no room for this\n'));
    while (failures.length === 0) await sleep(5);
    const t0 = performance.now();
    f.destroy();
    await once(f, 'close');
    assert.ok(performance.now() - t0 < 100, 'the backoff wait was cut short');
    assert.equal(fds.length, 2);
    assert.equal(fds[1], -(fds[0] as number));
    const attempts = failures.length;
    await sleep(300);
    assert.equal(failures.length, attempts, 'no retry after destroy');
  } finally {
    disk.unmount();
  }
});

test('a removed log dir is made again at the next rotation, and writing goes on', async () => {
  const root = mkdtempSync(join(tmpdir(), 'pd-log-'));
  const dir = join(root, 'logs', 'p');
  try {
    await makeLogDir(dir);
    const { f, failures, recoveries } = watched(dir, { maxSize: 100, maxFiles: 3 });
    await once(f, 'ready');
    f.write(Buffer.from('a'.repeat(150)));
    await once(f.notify, 'written');
    rmSync(join(root, 'logs'), { recursive: true });
    f.write(Buffer.from('b'.repeat(120)));
    f.end();
    await once(f, 'close');
    assert.deepEqual(
      failures.map((x) => [x.errno, x.action, x.first]),
      [['ENOENT', 'recreate-dir', true]],
    );
    assert.equal(recoveries[0]?.code, 'ENOENT');
    // The a's (one write, larger than the limit, into an empty file) were
    // live when the dir went; the b's would pass the limit, so the file
    // rotates first, finds the dir gone, makes it again and takes them whole.
    assert.deepEqual(readdirSync(dir), ['stdout.log']);
    assert.equal(await drain(readLog(dir, 'stdout')), 'b'.repeat(120));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a failure no retry mends gives up at once, saying how much is lost', async () => {
  const root = mkdtempSync(join(tmpdir(), 'pd-log-'));
  const dir = join(root, 'p');
  try {
    await makeLogDir(dir);
    const { f, failures } = watched(dir, { maxSize: 100, maxFiles: 3 });
    await once(f, 'ready');
    f.write(Buffer.from('a'.repeat(100)));
    await once(f.notify, 'written');
    // A file where the dir was: the rotation fails with ENOTDIR.
    rmSync(dir, { recursive: true });
    writeFileSync(dir, '');
    f.cork();
    f.write(Buffer.from('b'.repeat(30)));
    f.write(Buffer.from('c'.repeat(12)));
    f.uncork();
    const [err] = (await once(f, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ENOTDIR');
    assert.deepEqual(
      failures.map((x) => [x.errno, x.action, x.unwritten]),
      [['other', 'give-up', 42]],
    );
    assert.ok(f.destroyed);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
