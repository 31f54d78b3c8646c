import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pluginLogs } from '../../src/executor/plugin-logs.js';

type Rec = { time: string; stream: 'stdout' | 'stderr'; full: boolean; content: string };

// A deterministic mix: both streams, short and long lines, lines in P pieces
// (up to 16 KiB each), empty lines, spread over three rotated files.
function records(n: number): Rec[] {
  let seed = 7;
  const rand = (k: number): number => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % k;
  };
  const out: Rec[] = [];
  for (let i = 0; i < n; i++) {
    const stream = rand(3) === 0 ? 'stderr' : 'stdout';
    const size = rand(10) === 0 ? 1000 + rand(16_000) : rand(80);
    const time = `2026-12-07T10:${String(Math.floor(i / 600) % 60).padStart(2, '0')}:${String(Math.floor(i / 10) % 60).padStart(2, '0')}.${String(i).padStart(9, '0')}Z`;
    out.push({ time, stream, full: rand(4) !== 0, content: `${i}:${'x'.repeat(size)}` });
  }
  return out;
}

const line = (r: Rec): string => `${r.time} ${r.stream} ${r.full ? 'F' : 'P'} ${r.content}\n`;

/** What a count over everything gives (the forward reading of --tail and --tail-bytes). */
function expected(recs: Rec[], o: { lines?: number; bytes?: number; stream?: 'stdout' | 'stderr' }): Record<string, string> {
  const kept = recs.filter((r) => !o.stream || r.stream === o.stream);
  let skipLines = o.lines === undefined ? 0 : Math.max(0, kept.filter((r) => r.full).length - o.lines);
  const total = { stdout: 0, stderr: 0 };
  for (const r of kept) total[r.stream] += r.content.length + (r.full ? 1 : 0);
  const skip = { stdout: Math.max(0, total.stdout - (o.bytes ?? Infinity)), stderr: Math.max(0, total.stderr - (o.bytes ?? Infinity)) };
  const out = { stdout: '', stderr: '' };
  for (const r of kept) {
    if (skipLines > 0) {
      if (r.full) skipLines -= 1;
      continue;
    }
    let c = r.content + (r.full ? '\n' : '');
    const s = skip[r.stream];
    skip[r.stream] = Math.max(0, s - c.length);
    if (s >= c.length) continue;
    c = c.slice(s);
    out[r.stream] += c;
  }
  return out;
}

async function given(dir: string, o: { lines?: number; bytes?: number; stream?: 'stdout' | 'stderr' }): Promise<Record<string, string>> {
  const out = { stdout: '', stderr: '' };
  const opts = { ...(o.lines !== undefined ? { tailLines: o.lines } : {}), ...(o.bytes !== undefined ? { tail: o.bytes } : {}), ...(o.stream ? { stream: o.stream } : {}) };
  for await (const c of pluginLogs(dir, () => undefined, Promise.resolve(), opts)) out[c.stream] += c.data.toString();
  return out;
}

test('logs --tail and --tail-bytes read backwards give what a count over all the files gives (rotated files, P pieces, a torn last line)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'log-tail-'));
  try {
    const recs = records(3000);
    const third = Math.floor(recs.length / 3);
    writeFileSync(join(dir, 'plugin.log.2'), recs.slice(0, third).map(line).join(''));
    writeFileSync(join(dir, 'plugin.log.1'), recs.slice(third, 2 * third).map(line).join(''));
    // The live file ends with a line being written: not given, not counted.
    writeFileSync(join(dir, 'plugin.log'), `${recs.slice(2 * third).map(line).join('')}2026-12-07T11:00:00.000000000Z stdout F torn`);
    for (const o of [
      { lines: 0 },
      { lines: 1 },
      { lines: 20 },
      { lines: 700 },
      { lines: 1500 },
      { lines: 100_000 },
      { lines: 20, stream: 'stderr' as const },
      { bytes: 0 },
      { bytes: 100 },
      { bytes: 70_000 },
      { bytes: 1 << 30 },
      { bytes: 5000, stream: 'stdout' as const },
    ]) {
      assert.deepEqual(await given(dir, o), expected(recs, o), JSON.stringify(o));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
