// What the plugind command's verbs share: flag parsers (their errors name
// the flag's rule, commander names the flag), the client flags and a client
// made from them, and table output.
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { PluginsClient } from '../api/client.js';
import { DEFAULT_ADDRESS, type TlsFiles } from '../api/wire.js';
import { MAX_STOP_TIMEOUT_MS } from '../common/limits.js';

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

export function int(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`${name}: want a whole number from ${min} to ${max}`);
    return n;
  };
}

export const MAX_STOP_SECONDS = MAX_STOP_TIMEOUT_MS / 1000;

export function seconds(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > MAX_STOP_SECONDS) throw new InvalidArgumentError(`want seconds from 0 to ${MAX_STOP_SECONDS}`);
  return n;
}

export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** A runtime binary as typed: a name is looked up on PATH by plugind, a path is made absolute here, relative to where the command runs. */
export function runtimeBinary(v: string): string {
  if (v === '') throw new InvalidArgumentError('want a name on PATH or a path');
  return v.includes('/') ? resolve(v) : v;
}

export function level(v: string): string {
  if (!LEVELS.includes(v)) throw new InvalidArgumentError(`want one of ${LEVELS.join(', ')}`);
  return v;
}

/**
 * The options every verb takes, before or after the verb (as docker's,
 * nerdctl's and ctr's): the API address, its TLS files, the log level.
 * They are the program's: a verb reads them through globals().
 */
export function addGlobalOptions(program: Command): void {
  program
    .addOption(new Option('-a, --address <address>', `plugind API: unix:///PATH or tcp://127.0.0.1:PORT (default ${DEFAULT_ADDRESS}; serve: unix://<data-dir>/plugind.sock)`).env('PLUGIND_ADDRESS'))
    .addOption(new Option('--tls-cert <file>', 'client certificate (tcp:// with mutual TLS); serve: its server certificate').env('PLUGIND_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'its key').env('PLUGIND_TLS_KEY'))
    .addOption(new Option('--tls-ca <file>', "CA of plugind's certificate; serve: the CA that signs client certificates").env('PLUGIND_TLS_CA'))
    .addOption(new Option('--log-level <level>', `${LEVELS.join('|')} (serve's log; default info)`).argParser(level));
  root = program;
}

export interface GlobalFlags {
  address?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  logLevel?: string;
}

let root: Command | undefined;

export function globals(): GlobalFlags {
  return (root?.opts() ?? {}) as GlobalFlags;
}

/** Runs fn with a client for the global flags, closing it however fn ends. */
export async function withClient<T>(fn: (c: PluginsClient) => Promise<T>): Promise<T> {
  const c = client();
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

/** The TLS files among the flags (serve's and the clients' are named alike). */
export function tlsFiles(o: { tlsCert?: string; tlsKey?: string; tlsCa?: string }): Partial<TlsFiles> {
  return { ...(o.tlsCert ? { cert: o.tlsCert } : {}), ...(o.tlsKey ? { key: o.tlsKey } : {}), ...(o.tlsCa ? { ca: o.tlsCa } : {}) };
}

export function client(): PluginsClient {
  const g = globals();
  return new PluginsClient(g.address ?? DEFAULT_ADDRESS, { tls: tlsFiles(g) });
}

/** A ready timeout in seconds: above 0, at most an hour. */
export function readySeconds(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || n <= 0 || n > MAX_STOP_SECONDS) throw new InvalidArgumentError(`want seconds above 0, at most ${MAX_STOP_SECONDS}`);
  return n;
}

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

export const out = (s: string): boolean => process.stdout.write(s);

/** Says the error as every verb does (one line, `plugind: …`) and exits with code. */
export function fail(message: string, code: number): never {
  process.stderr.write(`plugind: ${message}\n`);
  process.exit(code);
}

/** Exit codes: 0 done; 1 plugind (or the plugin) said no, or it could not be reached; 2 a usage error. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

/** How long ago, as docker says it: "3 minutes ago", "About an hour ago". */
export function ago(d: Date | undefined, now = Date.now()): string {
  if (!d) return '-';
  const s = Math.max(0, (now - d.getTime()) / 1000);
  const n = (x: number, unit: string): string => `${x} ${unit}${x === 1 ? '' : 's'} ago`;
  if (s < 1) return 'Less than a second ago';
  if (s < 60) return n(Math.floor(s), 'second');
  const m = s / 60;
  if (m < 1.5) return 'About a minute ago';
  if (m < 60) return n(Math.round(m), 'minute');
  const h = m / 60;
  if (h < 1.5) return 'About an hour ago';
  if (h < 48) return n(Math.round(h), 'hour');
  const days = h / 24;
  if (days < 14) return n(Math.floor(days), 'day');
  if (days < 90) return n(Math.floor(days / 7), 'week');
  if (days < 730) return n(Math.floor(days / 30), 'month');
  return n(Math.floor(days / 365), 'year');
}

/**
 * Does fn for each id in turn, as docker's multi-id verbs do: a failure is
 * said on its own line and the rest go on; exits 1 at the end if any failed.
 */
export async function eachId(ids: string[], fn: (id: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const id of ids) {
    try {
      await fn(id);
    } catch (err) {
      failed = true;
      process.stderr.write(`plugind: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
  if (failed) process.exitCode = EXIT_FAILED;
}
