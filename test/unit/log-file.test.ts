// Plugin log files without containerd: exact rotation, and a follower that
// reads across rotations without losing or repeating a byte.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { RotatingLogFile } from '../../src/executor/log-file.js';
import { readLog } from '../../src/executor/log-reader.js';

async function drain(it: AsyncIterable<Buffer>): Promise<string> {
  let s = '';
  for await (const b of it) s += b.toString();
  return s;
}

test('rotation fills each file to maxSize and keeps maxFiles', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-log-'));
  try {
    const f = new RotatingLogFile(dir, 'stdout', { maxSize: 100, maxFiles: 3 });
    await once(f, 'ready');
    let all = '';
    for (let i = 0; i < 50; i++) {
      const line = `line ${String(i).padStart(3, '0')}\n`;
      all += line;
      f.write(Buffer.from(line));
    }
    f.end();
    await once(f, 'close');
    assert.deepEqual(readdirSync(dir).sort(), ['stdout.log', 'stdout.log.1', 'stdout.log.2']);
    assert.equal(statSync(join(dir, 'stdout.log.1')).size, 100);
    assert.equal(statSync(join(dir, 'stdout.log.2')).size, 100);
    const kept = await drain(readLog(dir, 'stdout'));
    assert.equal(kept, all.slice(all.length - kept.length));
    assert.equal(kept.length, 200 + (all.length % 100 || 100));
    assert.equal(await drain(readLog(dir, 'stdout', { tail: 9 })), 'line 049\n');
    assert.equal(await drain(readLog(dir, 'stdout', { tail: 0 })), '');
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
