// Pipe sets: a plugin's stdout and stderr as two pipes that the runc shim
// makes and gives to plugind-pipe-holder (containerd's binary:// logging
// protocol, see src/keeper/pipe-holder/holder.c), so that the plugin writes
// straight into pipes plugind reads and the shim copies nothing. A set is a
// symlink `<root>/<id>.<random>` that the holder points at its pid; the
// task's stdout URI names it, so a restore finds the set from the task.
import { constants as fsc, close as closeCb, open as openCb } from 'node:fs';
import { mkdir, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { StreamName } from './stdio.js';

export interface PipeSet {
  /** The holder's pid link: removing it removes the set. */
  link: string;
  /** The task's stdout and stderr: `binary://<holder>?pidlink=<link>`. */
  uri: string;
}

// The holder's fds: the read ends of the plugin's stdout and stderr pipes.
const HOLDER_FD: Record<StreamName, number> = { stdout: 3, stderr: 4 };

export class PipeSets {
  readonly root: string;
  readonly holder: string;
  #made: Promise<unknown> | undefined;

  constructor(root: string, holder: string) {
    this.root = root;
    this.holder = holder;
  }

  /** A new set named name (setName: not in use); nothing is made until the holder makes its link. */
  async take(name: string): Promise<PipeSet> {
    this.#made ??= mkdir(this.root, { recursive: true, mode: 0o700 });
    await this.#made;
    return this.setNamed(name);
  }

  setNamed(name: string): PipeSet {
    const link = join(this.root, name);
    return { link, uri: `binary://${encodeURI(this.holder)}?pidlink=${encodeURIComponent(link)}` };
  }

  /** The set a task's stdout (as containerd reports it) names, if it is one of ours. */
  setOf(stdout: string): PipeSet | undefined {
    if (!stdout.startsWith('binary://')) return undefined;
    let link: string | null;
    try {
      link = new URL(stdout).searchParams.get('pidlink');
    } catch {
      return undefined;
    }
    if (!link || dirname(link) !== this.root || basename(link).startsWith('.')) return undefined;
    return this.setNamed(basename(link));
  }

  /** Whether a set is one of these (not a FIFO set). */
  static is(set: object): set is PipeSet {
    return 'link' in set;
  }

  /** Names of the sets under root. */
  async list(): Promise<string[]> {
    try {
      return (await readdir(this.root)).filter((n) => !n.startsWith('.'));
    } catch {
      return [];
    }
  }

  async remove(set: PipeSet): Promise<void> {
    if (dirname(set.link) !== this.root) throw new Error(`refusing to remove ${set.link}: not a pipe set of ${this.root}`);
    await rm(set.link, { force: true });
  }

  /**
   * Opens read ends of the set's pipes (O_NONBLOCK, for epoll) through its
   * holder's fds; rejects when the holder is gone or its link names
   * another process.
   */
  async openReadEnds(set: PipeSet): Promise<Record<StreamName, number>> {
    const pid = Number(await readlink(set.link).catch(() => ''));
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no pipe holder for ${set.link} (it makes that link as it starts)`);
    const gone = (): Error => new Error(`pipe holder ${pid} of ${set.link} is not running`);
    const opened: number[] = [];
    try {
      for (const stream of ['stdout', 'stderr'] as const) opened.push(await openRead(`/proc/${pid}/fd/${HOLDER_FD[stream]}`));
      // After the opens: a holder still running with this set's link on
      // its command line is the process the fds were opened from.
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
      if (!argv.includes(set.link)) throw gone();
    } catch (err) {
      for (const fd of opened) closeCb(fd, () => {});
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw Object.assign(gone(), { cause: err });
      throw err;
    }
    return { stdout: opened[0] as number, stderr: opened[1] as number };
  }
}

function openRead(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    openCb(path, fsc.O_RDONLY | fsc.O_NONBLOCK, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}
