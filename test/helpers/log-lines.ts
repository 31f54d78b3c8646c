// Plugins in the kill and crash tests log numbered lines (`line0`, `tick1`,
// ...); reading them back says whether any was repeated or reordered and
// how many were lost, and where.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseRecords } from '../../src/executor/cri-log.js';

export interface LineGaps {
  /** Lines read. */
  lines: number;
  /** Runs of missing numbers. */
  gaps: number;
  /** Numbers missing in all. */
  missing: number;
  /** The first out-of-order or repeated line, if any. */
  disorder?: string;
}

/** The gaps in a log of numbered lines: each a word then a number counting up from 0. */
export function lineGaps(text: string): LineGaps {
  const lines = text.split('\n').filter((l) => l !== '');
  const out: LineGaps = { lines: lines.length, gaps: 0, missing: 0 };
  let expect = 0;
  for (const l of lines) {
    const n = Number(/\d+$/.exec(l)?.[0] ?? NaN);
    if (!(n >= expect)) {
      out.disorder ??= `${l} after number ${expect - 1}: out of order or repeated`;
      continue;
    }
    if (n > expect) {
      out.gaps += 1;
      out.missing += n - expect;
    }
    expect = n + 1;
  }
  return out;
}

/**
 * The content of a CRI log file's records (one stream, or both), as the
 * plugin wrote it; for a log dir, of its plugin.log and rotated files, oldest first.
 */
export function criContent(path: string, stream?: 'stdout' | 'stderr'): Buffer {
  const files = statSync(path).isDirectory()
    ? readdirSync(path)
        .filter((f) => /^plugin\.log(\.\d+)?$/.test(f))
        .sort((a, b) => Number(b.split('.')[2] ?? 0) - Number(a.split('.')[2] ?? 0))
        .map((f) => join(path, f))
    : [path];
  // A file rotated away between the listing and its read has nothing to give.
  const read = (f: string): Buffer => {
    try {
      return readFileSync(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return Buffer.alloc(0);
      throw err;
    }
  };
  const { records } = parseRecords(Buffer.concat(files.map(read)));
  return Buffer.concat(records.filter((r) => !stream || r.stream === stream).flatMap((r) => (r.full ? [r.content, Buffer.from('\n')] : [r.content])));
}
