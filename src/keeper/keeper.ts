// Starts (or finds) the FIFO keeper of a namespace's plugins dir: the
// process, apart from plugind and outliving it, that holds every plugin FIFO
// so that output a plugin writes while no plugind runs is kept
// (fifo-keeper/main.go, a static Go binary built by scripts/setup.sh).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { pluginPaths } from '../common/paths.js';

/** A program of the package's build/: beside src/ from source, beside dist/ when compiled (dist/src/keeper/). */
function built(name: string): string {
  const up = /\/dist\/src\/keeper\/?$/.test(fileURLToPath(new URL('.', import.meta.url))) ? '../../../' : '../../';
  return fileURLToPath(new URL(`${up}build/${name}`, import.meta.url));
}

/** The FIFO keeper binary (fifo-keeper/main.go). */
export function keeperBinary(): string {
  return built('plugind-fifo-keeper');
}

/** The program that holds a plugin's stdio pipes for its shim (pipe-holder/holder.c). */
export function pipeHolderBinary(): string {
  return built('plugind-pipe-holder');
}

// A keeper's command line names its program: build/plugind-fifo-keeper now;
// keeper/main.js (or .ts) or workers/fifo-keeper.js when an older plugind
// started a Node keeper. Those hold FIFOs the same way and are found again,
// not doubled.
const KEEPER_ENTRY = /\/plugind-fifo-keeper$|(\/keeper\/main|\/fifo-keeper)\.[jt]s$/;

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
 * outlives us) when none runs. Rejects if the binary is missing or a new
 * keeper does not come up in time.
 */
export async function ensureFifoKeeper(dir: string): Promise<number> {
  const running = await runningKeeper(dir);
  if (running) return running;
  const { root, pidFile } = keeperPaths(dir);
  const bin = keeperBinary();
  if (!existsSync(bin)) throw new Error(`FIFO keeper binary ${bin} is missing: build it with scripts/setup.sh`);
  // cwd /: a keeper that outlives plugind pins no directory of ours.
  const child = spawn(bin, [root, pidFile], { cwd: '/', detached: true, stdio: 'ignore' });
  let failed: Error | undefined;
  child.on('error', (err) => (failed = err));
  child.unref();
  const end = Date.now() + 10_000;
  while (Date.now() < end && !failed && child.exitCode === null && child.signalCode === null) {
    if (child.pid !== undefined && (await runningKeeper(dir)) === child.pid) return child.pid;
    await sleep(20);
  }
  child.kill('SIGKILL');
  if (failed) throw new Error(`FIFO keeper ${bin} could not be run: ${failed.message}`, { cause: failed });
  throw new Error(`FIFO keeper for ${root} did not start (${child.signalCode ? `signal ${child.signalCode}` : `exit code ${child.exitCode}`})`);
}

/** Stops the plugins dir's keeper, if one runs, and waits for it to go. */
export async function stopFifoKeeper(dir: string): Promise<void> {
  const pid = await runningKeeper(dir);
  if (!pid) return;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 250 && (await runningKeeper(dir)) === pid; i++) await sleep(20);
}
