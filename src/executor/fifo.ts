// FIFO sets for plugin stdio, made ahead of time in batches in a pool
// directory (mkfifo through libc.ts) and moved into place with a rename, so
// a create costs one rename; a set whose streams ended goes back to the
// pool. Read ends are opened O_NONBLOCK so that they are read through epoll,
// never a threadpool thread.
import { randomBytes } from 'node:crypto';
import { constants as fsc, open as openCb } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { mkfifoSync } from './libc.js';

export interface FifoSet {
  /** Directory that holds both FIFOs; removing it removes the set. */
  dir: string;
  stdout: string;
  stderr: string;
}

export interface FifoPoolOptions {
  /** Root of the FIFO sets. */
  root: string;
  /**
   * The pool's directory under root, private to this pool: pools of
   * different threads must not share one. Default ".pool".
   */
  poolName?: string;
  /** Sets made per refill. Default 32. */
  batch?: number;
}

export class FifoPool {
  readonly root: string;
  readonly #pool: string;
  readonly #batch: number;
  #ready: string[] = [];
  #refill: Promise<void> | undefined;
  #initialized: Promise<void> | undefined;

  constructor(options: FifoPoolOptions) {
    this.root = options.root;
    const poolName = options.poolName ?? '.pool';
    if (!/^\.[A-Za-z0-9._-]+$/.test(poolName)) throw new RangeError(`FifoPool poolName ${poolName}: want a dot-name`);
    this.#pool = join(options.root, poolName);
    this.#batch = options.batch ?? 32;
    if (!(this.#batch >= 1)) throw new RangeError(`FifoPool batch ${this.#batch}: want at least 1`);
  }

  async #init(): Promise<void> {
    await mkdir(this.#pool, { recursive: true, mode: 0o700 });
    // Sets left from an earlier run are as good as new ones.
    for (const name of await readdir(this.#pool)) {
      const dir = join(this.#pool, name);
      const ok = await Promise.all([isFifo(join(dir, 'stdout')), isFifo(join(dir, 'stderr'))]);
      if (ok[0] && ok[1]) this.#ready.push(dir);
      else await rm(dir, { recursive: true, force: true });
    }
  }

  async #make(n: number): Promise<void> {
    const dirs = Array.from({ length: n }, () => join(this.#pool, randomBytes(6).toString('hex')));
    await Promise.all(dirs.map((d) => mkdir(d, { mode: 0o700 })));
    const paths = dirs.flatMap((d) => [join(d, 'stdout'), join(d, 'stderr')]);
    try {
      for (const path of paths) mkfifoSync(path, 0o600);
    } catch (err) {
      await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
      throw new Error(`cannot make FIFOs in ${this.#pool}: ${(err as Error).message}`, { cause: err });
    }
    this.#ready.push(...dirs);
  }

  #startRefill(): Promise<void> {
    this.#refill ??= this.#make(this.#batch).finally(() => {
      this.#refill = undefined;
    });
    return this.#refill;
  }

  /** A fresh FIFO set at `<root>/<name>`; the name must not be in use. */
  async take(name: string): Promise<FifoSet> {
    this.#initialized ??= this.#init();
    await this.#initialized;
    let src = this.#ready.pop();
    while (!src) {
      await this.#startRefill();
      src = this.#ready.pop();
    }
    // Keep a batch in hand so the next creates do not wait for a spawn.
    if (this.#ready.length < this.#batch / 4) this.#startRefill().catch(() => {});
    const dir = join(this.root, name);
    try {
      await rename(src, dir);
    } catch (err) {
      await rm(src, { recursive: true, force: true });
      throw err;
    }
    return { dir, stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') };
  }

  /** Whether a path reported by containerd names a set of ours. */
  owns(path: string): boolean {
    const rel = relative(this.root, path);
    // Sets live at <root>/<name>/; dot-names are pools.
    return rel !== '' && !rel.startsWith('.') && rel.split(sep).length === 2;
  }

  /** The set a FIFO path (as a task reports it) belongs to. */
  setOf(path: string): FifoSet | undefined {
    if (!this.owns(path)) return undefined;
    const dir = dirname(path);
    return { dir, stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') };
  }

  /** Names of the sets in use (not in the pool). */
  async list(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter((n) => !n.startsWith('.'));
    } catch {
      return [];
    }
  }

  /** Every set made for id (named by setName), in use or left behind. */
  async setsOf(id: string): Promise<FifoSet[]> {
    const names = (await this.list()).filter((n) => idOfSet(n) === id);
    return names.map((n) => this.setOf(join(this.root, n, 'stdout')) as FifoSet);
  }

  /**
   * Puts a set back in the pool for another plugin. Only for a set whose
   * streams reached EOF: no one has the FIFOs open, so the pipes are empty.
   */
  async recycle(set: FifoSet): Promise<void> {
    if (!this.owns(set.stdout)) throw new Error(`refusing to recycle ${set.dir}: not a FIFO set of ${this.root}`);
    const dest = join(this.#pool, randomBytes(6).toString('hex'));
    try {
      await rename(set.dir, dest);
      this.#ready.push(dest);
    } catch {
      await rm(set.dir, { recursive: true, force: true });
    }
  }

  async remove(set: FifoSet): Promise<void> {
    if (!this.owns(set.stdout)) throw new Error(`refusing to remove ${set.dir}: not a FIFO set of ${this.root}`);
    await rm(set.dir, { recursive: true, force: true });
  }
}

async function isFifo(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFIFO();
  } catch {
    return false;
  }
}

/** Opens a FIFO's read end without blocking: returns at once, writer or not (libuv adds O_CLOEXEC). */
export function openReadEnd(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    openCb(path, fsc.O_RDONLY | fsc.O_NONBLOCK, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

export function setName(id: string): string {
  return `${id}.${randomBytes(4).toString('hex')}`;
}

/** The plugin id a set's name was made for. */
export function idOfSet(name: string): string {
  return name.slice(0, name.lastIndexOf('.'));
}

