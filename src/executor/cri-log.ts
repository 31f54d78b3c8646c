// Plugin output in the CRI log format, as kubelet, crictl, fluent-bit,
// promtail and Vector read it: one record per line,
//
//   <RFC 3339 time, ns> <stdout|stderr> <F|P> <content>\n
//
// F ends a line; P is part of one that goes on in the stream's next
// record (a line longer than MAX_RECORD, or a chunk that ended mid-line).
// Framing costs a newline scan per chunk (Buffer.indexOf) and a timestamp
// per chunk, not per byte.
import type { StreamName } from './stdio.js';

/** Content bytes in one record at most, as containerd's CRI plugin splits lines (16 KiB). */
export const MAX_RECORD = 16 << 10;

const NL = 0x0a;
const SPACE = 0x20;

let lastSec = -1;
let secIso = '';

/** Now as RFC 3339 with nanoseconds (µs precision, from the monotonic clock); one Date a second. */
export function nowRfc3339Nano(): string {
  const t = performance.timeOrigin + performance.now();
  const sec = Math.floor(t / 1000);
  if (sec !== lastSec) {
    lastSec = sec;
    secIso = new Date(sec * 1000).toISOString().slice(0, 19);
  }
  const ns = String(Math.floor((t - sec * 1000) * 1e6)).padStart(9, '0');
  return `${secIso}.${ns}Z`;
}

// Records' headers and short contents are copied into this buffer, one run
// after another. In a chunk of COPYLESS bytes or more, a content of BIG
// bytes or more is not copied but given as its own slice of the chunk
// (written with writev): a flood read in large chunks is written with no
// copy in user space. Smaller chunks are copied whole into one buffer: a
// copy of a few KiB costs less than the kernel's work per extra iovec.
const BIG = 4096;
const COPYLESS = 256 << 10;
let scratch = Buffer.allocUnsafe(1 << 18);

/**
 * chunk as CRI records: buffers to write in order (writev). They are slices
 * of chunk and of a buffer of this module's that the next call reuses:
 * write or copy them before framing again, and before chunk changes.
 */
export function frame(stream: StreamName, chunk: Buffer, time = nowRfc3339Nano()): Buffer[] {
  const head = Buffer.from(`${time} ${stream} `, 'latin1');
  const headLen = head.length;
  const big = chunk.length >= COPYLESS ? BIG : Infinity;
  const parts: Buffer[] = [];
  let out = scratch;
  let o = 0;
  let run = 0;
  // Room for n more bytes in the current run: a full buffer is left to the
  // parts that point into it, and a larger one taken.
  const room = (n: number): void => {
    if (o + n <= out.length) return;
    if (o > run) parts.push(out.subarray(run, o));
    out = scratch = Buffer.allocUnsafe(Math.max(n, out.length * 2));
    o = 0;
    run = 0;
  };
  let pos = 0;
  const n = chunk.length;
  while (pos < n) {
    const nl = chunk.indexOf(NL, pos);
    const end = nl < 0 ? n : nl;
    // A line of more than MAX_RECORD goes out as P records, then its last piece.
    let start = pos;
    do {
      const stop = Math.min(end, start + MAX_RECORD);
      const full = stop === end && nl >= 0;
      const len = stop - start;
      const need = headLen + 2 + (len < big ? len + 1 : 0);
      if (o + need > out.length) room(need);
      o += head.copy(out, o);
      out[o++] = full ? 0x46 : 0x50; // F : P
      out[o++] = SPACE;
      if (len < big) {
        o += chunk.copy(out, o, start, stop);
        out[o++] = NL;
      } else {
        parts.push(out.subarray(run, o), chunk.subarray(start, stop));
        run = o;
        // The newline opens the next run.
        if (o + 1 > out.length) room(1);
        out[o++] = NL;
      }
      start = stop;
    } while (start < end);
    pos = nl < 0 ? n : nl + 1;
  }
  if (o > run) parts.push(out.subarray(run, o));
  return parts;
}

export interface CriRecord {
  /** As written: RFC 3339 with nanoseconds. */
  time: string;
  stream: StreamName;
  /** F: the line ends here (its newline is not in content). */
  full: boolean;
  content: Buffer;
}

/**
 * Splits CRI text into records; a last line without its newline is left
 * (returned as rest) for the next read. A line that is no record (a file
 * cut short by a crash, say) is skipped.
 */
export function parseRecords(data: Buffer): { records: CriRecord[]; rest: Buffer } {
  const records: CriRecord[] = [];
  let pos = 0;
  for (;;) {
    const nl = data.indexOf(NL, pos);
    if (nl < 0) break;
    const r = parseRecord(data.subarray(pos, nl));
    if (r) records.push(r);
    pos = nl + 1;
  }
  return { records, rest: data.subarray(pos) };
}

/** One record from its line (no newline); undefined for a line that is not one. */
export function parseRecord(line: Buffer): CriRecord | undefined {
  const s1 = line.indexOf(SPACE);
  if (s1 < 20) return undefined;
  const s2 = line.indexOf(SPACE, s1 + 1);
  if (s2 < 0 || (line[s2 + 2] !== SPACE && s2 + 2 !== line.length)) return undefined;
  const stream = line.toString('latin1', s1 + 1, s2);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = line[s2 + 1];
  if (tag !== 0x46 && tag !== 0x50) return undefined;
  // 2026-12-04T10:00:00…: checked by shape here, parsed only when asked (timeMs).
  if (line[4] !== 0x2d || line[7] !== 0x2d || line[10] !== 0x54 || line[13] !== 0x3a) return undefined;
  const time = line.toString('latin1', 0, s1);
  return { time, stream, full: tag === 0x46, content: line.subarray(Math.min(s2 + 3, line.length)) };
}

/** A record's time in ms since the epoch (NaN for one that does not parse). */
export function timeMs(r: Pick<CriRecord, 'time'>): number {
  return Date.parse(r.time);
}
