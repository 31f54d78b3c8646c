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

export const addressOption = (): Option =>
  new Option('--address <address>', 'plugind API (unix:///PATH or tcp://127.0.0.1:PORT)').default(process.env.PLUGIND_ADDRESS ?? DEFAULT_ADDRESS);

export interface ClientFlags {
  address: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** The mutual-TLS files, on every client verb (added once all verbs exist). */
export function addTlsOptions(cmd: Command): void {
  cmd
    .addOption(new Option('--tls-cert <file>', 'client certificate (tcp:// with mutual TLS)').env('PLUGIND_TLS_CERT'))
    .addOption(new Option('--tls-key <file>', 'client key').env('PLUGIND_TLS_KEY'))
    .addOption(new Option('--tls-ca <file>', "CA of plugind's certificate").env('PLUGIND_TLS_CA'));
}

/** Runs fn with a client for the verb's flags, closing it however fn ends. */
export async function withClient<T>(o: ClientFlags, fn: (c: PluginsClient) => Promise<T>): Promise<T> {
  const c = client(o);
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

export function client(o: ClientFlags): PluginsClient {
  return new PluginsClient(o.address, { tls: tlsFiles(o) });
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
