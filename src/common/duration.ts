// Durations as users type them: a number of seconds (`30`, `0.5`) or Go's
// form, which docker's flags take (`500ms`, `30s`, `1m30s`, `2h`).

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const GO_DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;

/** Milliseconds, or undefined when the text is neither form (or negative). */
export function parseDuration(text: string): number | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  if (/^\d+(?:\.\d+)?$/.test(t)) return Number(t) * 1000;
  if (!GO_DURATION.test(t)) return undefined;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  return ms;
}

/** `30s`, `1.5s`, `250ms`: how plugind writes a duration back. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)}ms` : `${Number((ms / 1000).toFixed(3))}s`;
}

/**
 * A point in time as docker's --since and --until take it: a duration back
 * from now (`10m`, `90s`, `30`), or an RFC 3339 time (`2026-12-04T10:00:00Z`,
 * a date alone being its midnight UTC). Undefined for anything else.
 */
export function parseTimeArg(text: string, nowMs = Date.now()): Date | undefined {
  const ago = parseDuration(text);
  if (ago !== undefined) return new Date(nowMs - ago);
  if (!/^\d{4}-\d\d-\d\d([T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?)?$/.test(text.trim())) return undefined;
  const ms = Date.parse(text.trim());
  return Number.isNaN(ms) ? undefined : new Date(ms);
}
