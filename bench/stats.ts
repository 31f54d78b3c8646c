// Latency summaries in the Go baseline's shape: {n,min,p50,p95,p99,max,mean}
// in ms, nearest-rank percentiles.
export interface Summary {
  n: number;
  min: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

const round = (x: number): number => Math.round(x * 1000) / 1000;

export function summarize(samples: number[]): Summary | null {
  if (samples.length === 0) return null;
  const s = [...samples].sort((a, b) => a - b);
  const rank = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
  return {
    n: s.length,
    min: round(s[0] as number),
    p50: round(rank(50)),
    p95: round(rank(95)),
    p99: round(rank(99)),
    max: round(s[s.length - 1] as number),
    mean: round(s.reduce((a, b) => a + b, 0) / s.length),
  };
}

export const nowMs = (): number => performance.timeOrigin + performance.now();
