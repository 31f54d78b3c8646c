import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_RECORD, frame as framed, nowRfc3339Nano, parseRecords, timeMs } from '../../src/executor/cri-log.js';

/** frame()'s buffers, copied into one. */
const frame = (stream: 'stdout' | 'stderr', chunk: Buffer, time: string): Buffer => Buffer.concat(framed(stream, chunk, time));

const T = '2026-12-04T10:00:00.123456789Z';

test('frame: a record per line, F at its end, P for a chunk that ends mid-line and for pieces of a long line', () => {
  assert.equal(frame('stdout', Buffer.from('a\nbc\n'), T).toString(), `${T} stdout F a\n${T} stdout F bc\n`);
  assert.equal(frame('stderr', Buffer.from('x\npartial'), T).toString(), `${T} stderr F x\n${T} stderr P partial\n`);
  assert.equal(frame('stdout', Buffer.from('\n\n'), T).toString(), `${T} stdout F \n${T} stdout F \n`);
  const long = Buffer.alloc(MAX_RECORD * 2 + 10, 'y');
  const framed = frame('stdout', Buffer.concat([long, Buffer.from('\n')]), T).toString();
  const tags = framed.split('\n').filter(Boolean).map((l) => l.split(' ')[2]);
  assert.deepEqual(tags, ['P', 'P', 'F']);
  assert.ok(framed.split('\n').filter(Boolean).every((l) => l.length <= T.length + 10 + MAX_RECORD));
});

test('parse: what frame wrote comes back, binary content included, a cut last line left for the next read, junk skipped', () => {
  const bytes = Buffer.from([0, 1, 2, 255, 0x0d, 0x20]);
  // frame() gives its own buffer, reused by the next call: copied here.
  const text = Buffer.concat([Buffer.from(frame('stdout', Buffer.concat([bytes, Buffer.from('\n')]), T)), Buffer.from('not a record\n'), Buffer.from(frame('stderr', Buffer.from('half'), T))]);
  const cut = text.subarray(0, text.length - 3);
  const { records, rest } = parseRecords(cut);
  assert.equal(records.length, 1);
  assert.deepEqual([records[0]?.stream, records[0]?.full, records[0]?.time], ['stdout', true, T]);
  assert.ok(records[0]?.content.equals(bytes));
  assert.equal(timeMs(records[0] as { time: string }), Date.parse(T));
  assert.match(rest.toString(), / stderr P ha$/);
  assert.deepEqual(parseRecords(text).records.map((r) => [r.stream, r.full, r.content.toString()]).slice(1), [['stderr', false, 'half']]);
});

test('times are RFC 3339 with nine fraction digits, never going back', () => {
  let last = '';
  for (let i = 0; i < 1000; i++) {
    const t = nowRfc3339Nano();
    assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    assert.ok(t >= last, `${t} after ${last}`);
    last = t;
  }
});

test('frame matches a plain line-by-line framing for lines short and long, whatever the chunk', () => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const naive = (chunk: Buffer): string => {
    let out = '';
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(10, pos);
      const end = nl < 0 ? chunk.length : nl;
      let start = pos;
      do {
        const stop = Math.min(end, start + MAX_RECORD);
        out += `${T} stdout ${stop === end && nl >= 0 ? 'F' : 'P'} ${chunk.toString('latin1', start, stop)}\n`;
        start = stop;
      } while (start < end);
      pos = nl < 0 ? chunk.length : nl + 1;
    }
    return out;
  };
  for (let round = 0; round < 200; round++) {
    const pieces: string[] = [];
    for (let i = rnd(40); i >= 0; i--) pieces.push('x'.repeat([0, 1, 100, 4095, 4096, 20000, 40000][rnd(7)] as number) + (rnd(3) === 0 ? '' : '\n'));
    const chunk = Buffer.from(pieces.join(''), 'latin1');
    assert.equal(frame('stdout', chunk, T).toString('latin1'), naive(chunk), `round ${round}`);
  }
});
