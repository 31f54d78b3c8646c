// Runs the `plugind` command from source, as a user would type it, and
// collects what it printed: one module for every test that drives the CLI,
// whether it waits for the verb or leaves it running.
import { spawn, spawnSync, type ChildProcess, type SpawnSyncOptions } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '../../src/cli/main.ts');
// Resolved here, so that the command may run from any folder.
const TSX = import.meta.resolve('tsx');

export interface CliOptions {
  /** `--address` goes right after the verb. */
  address?: string;
  /** Run as this uid/gid with no supplementary groups (setpriv), to see what a non-root caller gets. */
  as?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Written to the command's stdin (a --password-stdin password, say). */
  input?: string;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** The command and argv for `plugind ARGS...` under the options. */
function command(args: string[], options: CliOptions): [string, string[]] {
  const [verb, ...rest] = args;
  const argv = ['--import', TSX, CLI, ...(options.address && verb ? [verb, '--address', options.address, ...rest] : args)];
  if (options.as === undefined) return [process.execPath, argv];
  return ['setpriv', [`--reuid=${options.as}`, `--regid=${options.as}`, '--clear-groups', process.execPath, ...argv]];
}

/** `plugind ARGS...`, waited for. */
export function cli(args: string[], options: CliOptions = {}): CliResult {
  const spawnOptions: SpawnSyncOptions = { encoding: 'utf8', timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 << 20 };
  if (options.cwd) spawnOptions.cwd = options.cwd;
  if (options.env) spawnOptions.env = options.env;
  if (options.input !== undefined) spawnOptions.input = options.input;
  const [cmd, argv] = command(args, options);
  const t0 = Date.now();
  const r = spawnSync(cmd, argv, spawnOptions);
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr), ms: Date.now() - t0 };
}

/** `plugind -a ADDRESS ARGS...`, waited for, its output as bytes (binary output compared byte for byte). */
export function cliBytes(args: string[], address: string): { code: number; stdout: Buffer; stderr: Buffer } {
  const [cmd, argv] = command(['-a', address, ...args], {});
  const r = spawnSync(cmd, argv, { timeout: 60_000, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** `plugind -a ADDRESS ARGS...`: the address before the verb, as docker's -H. */
export const cliAt =
  (address: () => string) =>
  (args: string[]): CliResult =>
    cli(['-a', address(), ...args]);

/** A CLI verb left running (logs --follow, events): its output so far and its exit. */
export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `plugind ARGS...`, left running; killed if the test process exits first. */
export function spawnCli(args: string[], options: Omit<CliOptions, 'timeoutMs'> = {}): CliProcess {
  const [cmd, argv] = command(args, options);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], cwd: options.cwd, env: options.env });
  const killChild = (): boolean => child.kill('SIGKILL');
  process.once('exit', killChild);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => {
      process.off('exit', killChild);
      resolve({ code, signal });
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}
