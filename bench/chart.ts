// An SVG of the create-latency and exit-event-lag distributions: for each
// tool the summary points (min, p50, p95, p99, max) on a log-scale ms axis.
import type { Summary } from './stats.js';

const COLORS: Record<string, string> = { plugind: '#1f77b4', gobench: '#2ca02c', mobybench: '#d62728' };

export interface Series {
  tool: string;
  label: string;
  summary: Summary;
}

function panel(title: string, series: Series[], y0: number): string {
  const W = 760;
  const left = 170;
  const right = W - 30;
  const vals = series.flatMap((s) => [s.summary.min, s.summary.max]).filter((v) => v > 0);
  const lo = Math.log10(Math.max(0.01, Math.min(...vals, 1)));
  const hi = Math.log10(Math.max(...vals, 10));
  const x = (v: number): number => left + ((Math.log10(Math.max(v, 0.01)) - lo) / (hi - lo || 1)) * (right - left);
  const parts: string[] = [`<text x="10" y="${y0 + 16}" font-weight="bold">${title} (ms, log scale)</text>`];
  for (let d = Math.ceil(lo); d <= Math.floor(hi); d++) {
    const xv = x(10 ** d);
    parts.push(`<line x1="${xv}" x2="${xv}" y1="${y0 + 24}" y2="${y0 + 30 + series.length * 22}" stroke="#ddd"/>`);
    parts.push(`<text x="${xv}" y="${y0 + 44 + series.length * 22}" font-size="11" text-anchor="middle">${10 ** d}</text>`);
  }
  series.forEach((s, i) => {
    const y = y0 + 40 + i * 22;
    const c = COLORS[s.tool] ?? '#555';
    const { min, p50, p95, p99, max } = s.summary;
    parts.push(`<text x="10" y="${y + 4}" font-size="11">${s.label}</text>`);
    parts.push(`<line x1="${x(min)}" x2="${x(max)}" y1="${y}" y2="${y}" stroke="${c}" stroke-width="1"/>`);
    parts.push(`<rect x="${x(p50)}" y="${y - 6}" width="${Math.max(1, x(p95) - x(p50))}" height="12" fill="${c}" opacity="0.5"/>`);
    parts.push(`<line x1="${x(p50)}" x2="${x(p50)}" y1="${y - 8}" y2="${y + 8}" stroke="${c}" stroke-width="3"/>`);
    parts.push(`<circle cx="${x(p99)}" cy="${y}" r="3.5" fill="${c}"/>`);
  });
  return parts.join('\n');
}

export function chartSvg(create: Series[], lag: Series[]): string {
  const h1 = 60 + create.length * 22;
  const h2 = 60 + lag.length * 22;
  const H = h1 + h2 + 40;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="760" height="${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    panel('create → started', create, 0),
    panel('exit event lag', lag, h1),
    `<text x="10" y="${H - 10}" font-size="11">bar: p50–p95, thick tick: p50, dot: p99, thin line: min–max</text>`,
    '</svg>',
  ].join('\n');
}
