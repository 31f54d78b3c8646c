// Starts (or finds) the FIFO keeper of a namespace's plugins dir: the
// process, apart from plugind and outliving it, that holds every plugin FIFO
// so that output a plugin writes while no plugind runs is kept (main.ts).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { pluginPaths } from '../common/paths.js';

/** The keeper's entry beside this module: compiled (dist/src/keeper/main.js), or the TypeScript source under tsx. */
function keeperFile(): string {
  const js = fileURLToPath(new URL('./main.js', import.meta.url));
  return existsSync(js) ? js : js.replace(/\.js$/, '.ts');
}

// A keeper's command line names its entry: keeper/main.js now,
// workers/fifo-keeper.js when an older plugind started it (it is the same
// program and is found again, not doubled).
const KEEPER_ENTRY = /(\/keeper\/main|\/fifo-keeper)\.[jt]s$/;

/** The keeper of a plugins dir (its `fifo/`) and its pid file. */
export function keeperPaths(dir: string): { root: string; pidFile: string } {
  const p = pluginPaths(dir);
  return { root: p.fifo, pidFile: p.keeperPid };
}

/** The pid of the keeper of an plugins dir, if one runs. */
export async function runningKeeper(dir: string): Promise<number | undefined> {
  const { root, pidFile } = keeperPaths(dir);
  const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
  if (!pid) return undefined;
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return argv.some((a) => KEEPER_ENTRY.test(a)) && argv.includes(root) ? pid : undefined;
}

/**
 * Returns the pid of the plugins dir's keeper, starting one (detached: it
 * outlives us) when none runs. Rejects if a new keeper does not come up in time.
 */
export async function ensureFifoKeeper(dir: string): Promise<number> {
  const running = await runningKeeper(dir);
  if (running) return running;
  const { root, pidFile } = keeperPaths(dir);
  const file = keeperFile();
  const args = file.endsWith('.ts') ? ['--import', 'tsx', file, root, pidFile] : [file, root, pidFile];
  // From source, tsx is resolved from the package root (src/keeper/../..).
  const cwd = fileURLToPath(new URL('../..', import.meta.url));
  const child = spawn(process.execPath, args, { cwd, detached: true, stdio: 'ignore' });
  child.unref();
  const end = Date.now() + 10_000;
  while (Date.now() < end && child.exitCode === null) {
    if ((await runningKeeper(dir)) === child.pid) return child.pid as number;
    await sleep(20);
  }
  child.kill('SIGKILL');
  throw new Error(`FIFO keeper for ${root} did not start (exit code ${child.exitCode})`);
}

/** Stops the plugins dir's keeper, if one runs, and waits for it to go. */
export async function stopFifoKeeper(dir: string): Promise<void> {
  const pid = await runningKeeper(dir);
  if (!pid) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 250 && (await runningKeeper(dir)) === pid; i++) await sleep(20);
}
