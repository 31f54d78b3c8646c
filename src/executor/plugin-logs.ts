// A plugin's output as `logs` gives it: the CRI records of its log file
// (rotated files first), turned back into the bytes the plugin wrote, per
// stream, partial lines joined. Filtered by stream and by time (--since,
// --until), cut to the last N lines (docker's --tail) or the last N bytes of
// each stream (--tail-bytes; both found backwards from the end, see
// log-tail.ts), each line prefixed by its time (--timestamps), and followed
// across rotations while the plugin runs.
//
// Log files an earlier plugind wrote (raw `stdout.log`, `stderr.log` and
// their rotated files) are read first, as lines timed by their file's
// mtime: an upgrade loses no output.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseRecords, timeMs as timeOf, type CriRecord } from './cri-log.js';
import { invalidArgument } from './errors.js';
import type { RotatingLogFile } from './log-file.js';
import { readLog, type LogChunk } from './log-reader.js';
import { tailStart } from './log-tail.js';
import { LOG_NAME, STREAMS, type StreamName } from './stdio.js';

export interface PluginLogsOptions {
  stream?: StreamName;
  /** Only the last this many bytes of each stream (--tail-bytes). */
  tail?: number;
  /** Only the last this many lines, both streams counted (--tail). */
  tailLines?: number;
  sinceMs?: number;
  untilMs?: number;
  /** Each line starts with its record's time and a space. */
  timestamps?: boolean;
  follow?: boolean;
  signal?: AbortSignal;
}

// Output is sent in chunks of about this size (records of one stream joined).
const CHUNK = 64 << 10;

const isLegacy = (names: string[], stream: StreamName): boolean => names.some((n) => n === `${stream}.log` || n.startsWith(`${stream}.log.`));

/** Whether an earlier plugind's raw log files are there. */
async function hasLegacy(dir: string): Promise<boolean> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return STREAMS.some((s) => isLegacy(names, s));
}

/** Records of an earlier plugind's raw log files, a line each, timed by the file's mtime. */
async function* legacyRecords(dir: string): AsyncGenerator<CriRecord> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  for (const stream of STREAMS) {
    if (!isLegacy(names, stream)) continue;
    let mtimeMs = 0;
    try {
      mtimeMs = (await stat(join(dir, names.includes(`${stream}.log`) ? `${stream}.log` : `${stream}.log.1`))).mtimeMs;
    } catch {
      /* gone meanwhile */
    }
    const time = new Date(mtimeMs).toISOString();
    let rest: Buffer = Buffer.alloc(0);
    for await (const data of readLog(dir, stream)) {
      let buf = rest.length > 0 ? Buffer.concat([rest, data]) : data;
      let pos = 0;
      for (;;) {
        const nl = buf.indexOf(0x0a, pos);
        if (nl < 0) break;
        yield { time, stream, full: true, content: buf.subarray(pos, nl) };
        pos = nl + 1;
      }
      rest = Buffer.from(buf.subarray(pos));
      buf = rest;
    }
    if (rest.length > 0) yield { time, stream, full: false, content: rest };
  }
}

/**
 * Every record, legacy first, then the CRI files; with live, following it
 * until it closes. null after the records of each read: what came so far
 * can be sent. With from (a tail's start, see log-tail.ts), the CRI records
 * from that byte on only; it is read from the byte before, which must be a
 * newline: if the files rotated meanwhile, what comes first up to a newline
 * is not a whole record and is dropped.
 */
async function* records(dir: string, live: RotatingLogFile | undefined, follow: boolean, signal: AbortSignal | undefined, from?: number): AsyncGenerator<CriRecord | null> {
  if (from === undefined) yield* legacyRecords(dir);
  let rest: Buffer = Buffer.alloc(0);
  let resync = from !== undefined && from > 0;
  const start = from !== undefined ? { from: Math.max(0, from - 1) } : {};
  for await (const read of readLog(dir, LOG_NAME, { follow, live, signal, ...start })) {
    let data = read;
    if (resync) {
      const nl = data.indexOf(0x0a);
      if (nl < 0) continue;
      data = data.subarray(nl + 1);
      resync = false;
    }
    const buf = rest.length > 0 ? Buffer.concat([rest, data]) : data;
    const parsed = parseRecords(buf);
    for (const r of parsed.records) yield r;
    yield null;
    rest = Buffer.from(parsed.rest);
  }
}

/**
 * The plugin's output (see the file's comment). `settled` is waited for
 * first (an exit still flushing); live gives the file its copy loops write
 * now, if it runs. Throws at once (not when iterated) for a bad option.
 */
export function pluginLogs(dir: string, live: () => RotatingLogFile | undefined, settled: Promise<void>, options: PluginLogsOptions = {}): AsyncIterable<LogChunk> {
  for (const [name, v] of [
    ['tail', options.tail],
    ['tail lines', options.tailLines],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw invalidArgument(`${name} ${String(v)}: want a whole number`);
  }
  return (async function* () {
    await settled;
    const { sinceMs, untilMs } = options;
    const timed = sinceMs !== undefined || untilMs !== undefined;
    const inTime = (r: CriRecord): boolean => {
      if (!timed) return true;
      const t = timeOf(r);
      return (sinceMs === undefined || t >= sinceMs) && (untilMs === undefined || t < untilMs);
    };
    const keep = (r: CriRecord): boolean => (options.stream === undefined || r.stream === options.stream) && inTime(r);
    // A tail is found backwards from the end (log-tail.ts), or, where an
    // earlier plugind's files are too, by a first pass over all of it.
    let skipLines = 0;
    let skipBytes: Record<StreamName, number> = { stdout: 0, stderr: 0 };
    let from: number | undefined;
    const tailed = options.tailLines !== undefined || options.tail !== undefined;
    if (tailed && !(await hasLegacy(dir))) {
      ({ from, skipLines, skipBytes } = await tailStart(dir, { lines: options.tailLines, bytes: options.tail, stream: options.stream, keep }));
    } else if (tailed) {
      let lines = 0;
      const bytes: Record<StreamName, number> = { stdout: 0, stderr: 0 };
      for await (const r of records(dir, undefined, false, undefined)) {
        if (!r || !keep(r)) continue;
        if (r.full) lines += 1;
        bytes[r.stream] += r.content.length + (r.full ? 1 : 0);
      }
      if (options.tailLines !== undefined) skipLines = Math.max(0, lines - options.tailLines);
      if (options.tail !== undefined) for (const s of STREAMS) skipBytes[s] = Math.max(0, bytes[s] - options.tail);
    }
    const file = options.follow ? live() : undefined;
    // A line's time goes before its first record; a stream is mid-line after a P record.
    const midLine: Record<StreamName, boolean> = { stdout: false, stderr: false };
    let batch: Buffer[] = [];
    let batchStream: StreamName = 'stdout';
    let batchBytes = 0;
    const flush = (): LogChunk | undefined => {
      if (batch.length === 0) return undefined;
      const chunk = { stream: batchStream, data: Buffer.concat(batch) };
      batch = [];
      batchBytes = 0;
      return chunk;
    };
    for await (const r of records(dir, file, Boolean(file), options.signal, from)) {
      if (r === null) {
        // While following, what came is given now rather than when the batch fills.
        if (file) {
          const out = flush();
          if (out) yield out;
        }
        continue;
      }
      if (untilMs !== undefined && options.follow && timeOf(r) >= untilMs) break;
      if (!keep(r)) continue;
      if (skipLines > 0) {
        if (r.full) skipLines -= 1;
        continue;
      }
      // A line's content and its newline go into the batch as they are (joined once, at flush).
      let content = r.content;
      const newline = r.full;
      const skip = skipBytes[r.stream];
      if (skip > 0) {
        const size = content.length + (newline ? 1 : 0);
        skipBytes[r.stream] = Math.max(0, skip - size);
        if (skip >= size) continue;
        content = content.subarray(skip);
      }
      if (batch.length > 0 && (batchStream !== r.stream || batchBytes >= CHUNK)) {
        const out = flush();
        if (out) yield out;
      }
      batchStream = r.stream;
      if (options.timestamps && !midLine[r.stream]) batch.push(Buffer.from(`${r.time} `));
      if (content.length > 0) batch.push(content);
      if (newline) batch.push(NEWLINE);
      batchBytes += content.length + (newline ? 1 : 0);
      midLine[r.stream] = !r.full;
    }
    const out = flush();
    if (out) yield out;
  })();
}

const NEWLINE = Buffer.from('\n');
