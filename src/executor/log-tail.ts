// Where `logs --tail N` (lines) and `--tail-bytes N` start, found by
// reading the CRI log files backwards from the end, a block at a time: what
// it costs is the tail's size, not the size of the logs kept.
//
// From the start found, the output pass skips `skipLines` whole lines (kept
// F records) and `skipBytes` of each stream, as a count over everything
// would have it: output starts after the (N+1)th line from the end, and each
// stream's last N bytes are given.
import { open, stat } from 'node:fs/promises';
import { parseRecord, type CriRecord } from './cri-log.js';
import { existingFiles } from './log-reader.js';
import { LOG_NAME, STREAMS, type StreamName } from './stdio.js';

export interface TailWanted {
  lines?: number | undefined;
  bytes?: number | undefined;
  /** Only this stream's records count (and only its bytes are wanted). */
  stream?: StreamName | undefined;
  /** Whether a record counts (its stream and time). */
  keep: (r: CriRecord) => boolean;
}

export interface TailStart {
  /** Byte offset of the first record to read, from the start of the oldest file. */
  from: number;
  skipLines: number;
  skipBytes: Record<StreamName, number>;
}

const BLOCK = 64 << 10;
const NL = 0x0a;

export async function tailStart(dir: string, want: TailWanted): Promise<TailStart> {
  const files = await existingFiles(dir, LOG_NAME);
  const sizes = await Promise.all(files.map((f) => stat(f).then((s) => s.size, () => 0)));
  const streams = want.stream ? [want.stream] : STREAMS;
  let lines = 0;
  const bytes: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  const found = (): boolean => (want.lines === undefined || lines > want.lines) && (want.bytes === undefined || streams.every((s) => bytes[s] >= (want.bytes as number)));
  const at = (from: number): TailStart => ({
    from,
    skipLines: want.lines === undefined ? 0 : Math.max(0, lines - want.lines),
    skipBytes: { stdout: Math.max(0, bytes.stdout - (want.bytes ?? Infinity)), stderr: Math.max(0, bytes.stderr - (want.bytes ?? Infinity)) },
  });
  let fileStart = sizes.reduce((a, b) => a + b, 0);
  for (let i = files.length - 1; i >= 0; i -= 1) {
    const size = sizes[i] ?? 0;
    fileStart -= size;
    const handle = await open(files[i] as string, 'r').catch(() => undefined);
    if (!handle) continue;
    try {
      // carry: the start of the block read before, up to its first newline
      // (a line whose beginning is in this block).
      let carry: Buffer = Buffer.alloc(0);
      let last = true;
      for (let end = size; end > 0; ) {
        const start = Math.max(0, end - BLOCK);
        const block = Buffer.allocUnsafe(end - start);
        const { bytesRead } = await handle.read(block, 0, block.length, start);
        let data = carry.length > 0 ? Buffer.concat([block.subarray(0, bytesRead), carry]) : block.subarray(0, bytesRead);
        if (last) {
          // A torn last line (being written) is not counted: the output pass does not give it either.
          const nl = data.lastIndexOf(NL);
          if (nl < 0) {
            end = start;
            continue;
          }
          data = data.subarray(0, nl + 1);
          last = false;
        }
        let e = data.length;
        while (e > 0) {
          const s = e >= 2 ? data.lastIndexOf(NL, e - 2) + 1 : 0;
          if (s === 0 && start > 0) break;
          const r = parseRecord(data.subarray(s, e - 1));
          if (r && want.keep(r)) {
            if (r.full) lines += 1;
            bytes[r.stream] += r.content.length + (r.full ? 1 : 0);
            if (found()) return at(fileStart + start + s);
          }
          e = s;
        }
        carry = Buffer.from(data.subarray(0, e));
        end = start;
      }
    } finally {
      await handle.close().catch(() => {});
    }
  }
  return at(0);
}
