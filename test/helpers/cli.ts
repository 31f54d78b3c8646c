// Runs the `plugind` command from source, as a user would type it, and
// collects what it printed: one spawner for every test that drives the CLI.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { join } from 'node:path';

export const CLI = join(import.meta.dirname, '../../src/cli/main.ts');
// Resolved here, so that the command may run from any folder.
const TSX = import.meta.resolve('tsx');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `plugind ARGS...`; with address, `--address` goes right after the verb. */
export function cli(args: string[], options: { address?: string; cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): CliResult {
  const [verb, ...rest] = args;
  const argv = options.address && verb ? [verb, '--address', options.address, ...rest] : args;
  const spawnOptions: SpawnSyncOptions = { encoding: 'utf8', timeout: options.timeoutMs ?? 60_000 };
  if (options.cwd) spawnOptions.cwd = options.cwd;
  if (options.env) spawnOptions.env = options.env;
  const r = spawnSync(process.execPath, ['--import', TSX, CLI, ...argv], spawnOptions);
  return { code: r.status ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
