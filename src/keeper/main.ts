// The FIFO keeper: a small process apart from plugind, which outlives it,
// holding a read end of every plugin FIFO under one root and never reading.
//
// What is in a pipe lives only while someone holds it. A plugin that writes
// and exits while no plugind runs (killed, or restarting) has its shim close
// the write end; with no reader left either, the kernel would drop those last
// words. Held by the keeper, they wait in the pipe for the next plugind,
// which reads them and then sees EOF as usual (EOF needs no writer; the
// keeper is none).
//
// It rescans the root when it changes (fs.watch) and every SCAN_MS: opens
// the FIFOs of sets that appeared, closes those of sets gone (removed, or
// renamed back into a pool). It exits when the root is gone or on SIGTERM,
// and writes its pid to the pid file it is given.
//
// Usage: node dist/src/keeper/main.js <fifo root> <pid file> (started by keeper.ts)
import { closeSync, constants as fsc, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const SCAN_MS = 2000;
const STREAMS = ['stdout', 'stderr'] as const;

const [root, pidFile] = process.argv.slice(2);
if (!root || !pidFile) {
  process.stderr.write('usage: fifo-keeper <fifo root> <pid file>\n');
  process.exit(2);
}

/** Set name → the fds held for its FIFOs. */
const held = new Map<string, number[]>();

function scan(): void {
  let names: string[];
  try {
    names = readdirSync(root as string).filter((n) => !n.startsWith('.'));
  } catch {
    return stop();
  }
  const present = new Set(names);
  for (const [name, fds] of held) {
    if (present.has(name)) continue;
    for (const fd of fds) closeSync(fd);
    held.delete(name);
  }
  for (const name of names) {
    if (held.has(name)) continue;
    const fds: number[] = [];
    for (const stream of STREAMS) {
      try {
        fds.push(openSync(join(root as string, name, stream), fsc.O_RDONLY | fsc.O_NONBLOCK));
      } catch {
        /* not (yet) a complete set: the next scan looks again */
      }
    }
    if (fds.length === STREAMS.length) held.set(name, fds);
    else for (const fd of fds) closeSync(fd);
  }
}

let pending: NodeJS.Timeout | undefined;
function soon(): void {
  pending ??= setTimeout(() => {
    pending = undefined;
    scan();
  }, 10);
}

function stop(): never {
  // The pid file is ours to remove only while it names us.
  try {
    if (readFileSync(pidFile as string, 'utf8').trim() === String(process.pid)) rmSync(pidFile as string, { force: true });
  } catch {
    /* already gone */
  }
  process.exit(0);
}

process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// plugind's shard workers make the root too, with the same mode.
mkdirSync(root, { recursive: true, mode: 0o700 });
writeFileSync(pidFile, `${process.pid}\n`);
scan();
try {
  watch(root, { persistent: false }, soon).on('error', () => stop());
} catch {
  stop();
}
setInterval(() => {
  if (!existsSync(root)) stop();
  scan();
}, SCAN_MS);
