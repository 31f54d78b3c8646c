// Starts (or finds) the FIFO keeper of a FIFO root: the process, apart from
// plugind and outliving it, that holds every plugin FIFO so that output a
// plugin writes while no plugind runs is kept (workers/fifo-keeper.ts).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

/** The keeper's entry: compiled, or the TypeScript source under tsx. */
function keeperFile(): string {
  const js = fileURLToPath(new URL('../../workers/fifo-keeper.js', import.meta.url));
  return existsSync(js) ? js : js.replace(/\.js$/, '.ts');
}

/** The keeper of an executor's data dir (`fifo/` under it) and its pid file. */
export function keeperPaths(dataDir: string): { root: string; pidFile: string } {
  return { root: join(dataDir, 'fifo'), pidFile: join(dataDir, 'fifo-keeper.pid') };
}

/** The pid of the keeper of an executor's data dir, if one runs. */
export async function runningKeeper(dataDir: string): Promise<number | undefined> {
  const { root, pidFile } = keeperPaths(dataDir);
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!pid) return undefined;
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return argv.some((a) => /fifo-keeper\.[jt]s$/.test(a)) && argv.includes(root) ? pid : undefined;
}

/**
 * Returns the pid of the data dir's keeper, starting one (detached: it
 * outlives us) when none runs. Rejects if a new keeper does not come up in time.
 */
export async function ensureFifoKeeper(dataDir: string): Promise<number> {
  const running = await runningKeeper(dataDir);
  if (running) return running;
  const { root, pidFile } = keeperPaths(dataDir);
  const file = keeperFile();
  const args = file.endsWith('.ts') ? ['--import', 'tsx', file, root, pidFile] : [file, root, pidFile];
  // From source, tsx is resolved from the package root.
  const cwd = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawn(process.execPath, args, { cwd, detached: true, stdio: 'ignore' });
  child.unref();
  const end = Date.now() + 10_000;
  while (Date.now() < end && child.exitCode === null) {
    if ((await runningKeeper(dataDir)) === child.pid) return child.pid as number;
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`FIFO keeper for ${root} did not start (exit code ${child.exitCode})`);
}

/** Stops the data dir's keeper, if one runs, and waits for it to go. */
export async function stopFifoKeeper(dataDir: string): Promise<void> {
  const pid = await runningKeeper(dataDir);
  if (!pid) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 250 && (await runningKeeper(dataDir)) === pid; i++) await sleep(20);
}
