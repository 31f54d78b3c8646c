// The FIFO keeper on its own (build/plugind-fifo-keeper, built by
// scripts/setup.sh), no containerd: it holds every complete set under its
// root and lets go of those removed or put back in a pool, keeps what a
// writer left in a pipe, is found again by its pid file (an older Node keeper
// too), and exits on SIGTERM or when its root goes, removing the pid file
// only while it names it.
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsc, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ensureFifoKeeper, keeperBinary, keeperPaths, runningKeeper, stopFifoKeeper } from '../../src/keeper/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'plugind-keeper-'));
const dirs: string[] = [];
const others: ChildProcess[] = [];
after(async () => {
  for (const dir of dirs) await stopFifoKeeper(dir).catch(() => {});
  for (const p of others) p.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
function pluginsDir(): string {
  const dir = join(tmp, `plugins-${n++}`);
  dirs.push(dir);
  return dir;
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Running and not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** What a process holds open, by path. */
function held(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

function makeSet(root: string, name: string, streams = ['stdout', 'stderr']): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  execFileSync('mkfifo', ['-m', '600', ...streams.map((s) => join(dir, s))]);
  return dir;
}

const holds = (pid: number, dir: string): boolean => {
  const h = held(pid);
  return h.includes(join(dir, 'stdout')) && h.includes(join(dir, 'stderr'));
};
const holdsNone = (pid: number, dir: string): boolean => !held(pid).some((p) => p.startsWith(dir + '/'));

test('holds complete sets, lets go of those gone, keeps what a writer left', async () => {
  const dir = pluginsDir();
  const { root, pidFile } = keeperPaths(dir);
  const a = makeSet(root, 'a.0001'); // before it starts: held as it starts
  const pid = await ensureFifoKeeper(dir);
  assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0], keeperBinary());
  assert.equal(readFileSync(pidFile, 'utf8'), `${pid}\n`);
  assert.ok(holds(pid, a), 'a set there at start is held once the pid file names the keeper');
  assert.equal(await ensureFifoKeeper(dir), pid, 'found again, not doubled');

  // A writer that exits: its words wait in the pipe for the next reader.
  const w = openSync(join(a, 'stdout'), fsc.O_WRONLY | fsc.O_NONBLOCK); // ENXIO without a reader
  writeSync(w, 'last words\n');
  closeSync(w);
  await new Promise((r) => setTimeout(r, 100));
  const r = openSync(join(a, 'stdout'), fsc.O_RDONLY | fsc.O_NONBLOCK);
  const buf = Buffer.alloc(64);
  const got = readSync(r, buf);
  closeSync(r);
  assert.equal(buf.subarray(0, got).toString(), 'last words\n');

  // Made while it runs, put back in a pool, taken out again, removed.
  const b = makeSet(root, 'b.0002');
  await until('b held', () => holds(pid, b));
  mkdirSync(join(root, '.pool'), { mode: 0o700 });
  renameSync(b, join(root, '.pool', 'spare'));
  // A held fd follows its FIFO: the keeper lets go of it once it sees b gone.
  await until('b let go, now in the pool (pools are not held)', () => holdsNone(pid, join(root, '.pool')));
  const c = join(root, 'c.0003');
  renameSync(join(root, '.pool', 'spare'), c);
  await until('c held', () => holds(pid, c));
  rmSync(a, { recursive: true });
  await until('a let go', () => holdsNone(pid, a));

  // Half a set is not held until it is whole.
  const d = makeSet(root, 'd.0004', ['stdout']);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(holdsNone(pid, d), 'no stderr yet: nothing of it held');
  execFileSync('mkfifo', ['-m', '600', join(d, 'stderr')]);
  await until('d held once whole', () => holds(pid, d), 5_000);

  await stopFifoKeeper(dir);
  await until('keeper gone', () => !alive(pid));
  assert.equal(existsSync(pidFile), false, 'its pid file went with it');
  assert.equal(await runningKeeper(dir), undefined);
});

test('exits when its root goes; the pid file is removed only while it names the keeper', async () => {
  const dir = pluginsDir();
  const { root, pidFile } = keeperPaths(dir);
  const pid = await ensureFifoKeeper(dir);
  rmSync(root, { recursive: true });
  await until('keeper gone with its root', () => !alive(pid));
  assert.equal(existsSync(pidFile), false);

  const again = await ensureFifoKeeper(dir);
  assert.notEqual(again, pid);
  writeFileSync(pidFile, '1\n'); // another's now
  process.kill(again, 'SIGTERM');
  await until('keeper gone on SIGTERM', () => !alive(again));
  assert.equal(readFileSync(pidFile, 'utf8'), '1\n', 'a pid file naming another is left alone');
  assert.equal(await runningKeeper(dir), undefined, 'pid 1 is no keeper');
  const third = await ensureFifoKeeper(dir);
  assert.equal(readFileSync(pidFile, 'utf8'), `${third}\n`, 'a new keeper takes the pid file over');
});

test('a Node keeper started by an older plugind is found, not doubled', async () => {
  for (const entry of ['/opt/plugind/dist/src/keeper/main.js', '/opt/plugind/dist/workers/fifo-keeper.js']) {
    const dir = pluginsDir();
    const { root, pidFile } = keeperPaths(dir);
    mkdirSync(root, { recursive: true });
    // Its command line as an older plugind spawned it: node <entry> <root> <pid file>.
    const old = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)', entry, root, pidFile], { stdio: 'ignore' });
    others.push(old);
    await until('old keeper up', () => old.pid !== undefined && readFileSync(`/proc/${old.pid}/cmdline`, 'utf8').includes(root));
    writeFileSync(pidFile, `${old.pid}\n`);
    assert.equal(await runningKeeper(dir), old.pid, entry);
    assert.equal(await ensureFifoKeeper(dir), old.pid, entry);
    old.kill('SIGKILL');
  }
});

test('usage: both arguments or exit 2', () => {
  assert.throws(() => execFileSync(keeperBinary(), [tmp], { stdio: 'pipe' }), (err: { status?: number; stderr?: Buffer }) => err.status === 2 && /usage: plugind-fifo-keeper <fifo root> <pid file>/.test(String(err.stderr)));
});
