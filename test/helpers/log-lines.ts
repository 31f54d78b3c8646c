// Plugins in the kill and crash tests log numbered lines (`line0`, `tick1`,
// ...); reading them back says whether any was repeated or reordered and
// how many were lost, and where.

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
