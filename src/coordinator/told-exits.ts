// The pid of the last exit told per plugin id, kept in an append-only file
// so that it outlives plugind. An exit is told before it is recorded on the
// container; a plugind killed in between finds the exit unrecorded after its
// restart and would tell it again. Appends are synchronous and unflushed:
// they survive the process being killed (the page cache keeps them), which
// is the failure this guards against.
//
// Lines: `R <pid> <id>` (told) and `D <id>` (forgotten: the id ran again or
// was removed). Ids never hold spaces or newlines (see executor/ids.ts).
import { closeSync, existsSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';

/** Rewrite the file once it holds this many more lines than live entries. */
const COMPACT_SLACK = 4096;

export class ToldExits {
  readonly #path: string;
  readonly #pids = new Map<string, number>();
  readonly #onWriteError: (err: NodeJS.ErrnoException, first: boolean) => void;
  #fd: number | undefined;
  #lines = 0;
  /** A write failed and none has worked since. */
  #failing = false;

  /**
   * onWriteError hears of each append or compaction that failed (a full
   * disk; `first` since writes last worked): the entry is kept in memory, so
   * only a plugind killed before the disk has room again can tell that exit
   * twice. formerPath: where an earlier plugind kept the file; it is read
   * when path is not there yet, and goes once path is written.
   */
  constructor(path: string, onWriteError: (err: NodeJS.ErrnoException, first: boolean) => void = () => {}, formerPath?: string) {
    this.#path = path;
    this.#onWriteError = onWriteError;
    const source = existsSync(path) ? path : formerPath !== undefined && existsSync(formerPath) ? formerPath : undefined;
    if (source) {
      for (const line of readFileSync(source, 'utf8').split('\n')) {
        const [op, a, b] = line.split(' ');
        if (op === 'R' && b) this.#pids.set(b, Number(a));
        else if (op === 'D' && a) this.#pids.delete(a);
      }
    }
    try {
      this.#fd = this.#compact();
      if (source !== undefined && source === formerPath) rmSync(formerPath, { force: true });
    } catch (err) {
      this.#failed(err);
      this.#fd = openSync(path, 'a');
    }
  }

  /** True when this exit (id, pid) was told already. */
  has(id: string, pid: number): boolean {
    return this.#pids.get(id) === pid;
  }

  add(id: string, pid: number): void {
    this.#pids.set(id, pid);
    this.#append(`R ${pid} ${id}\n`);
  }

  delete(id: string): void {
    if (this.#pids.delete(id)) this.#append(`D ${id}\n`);
  }

  /** Later changes are kept in memory only. */
  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }

  #append(line: string): void {
    if (this.#fd === undefined) return;
    try {
      writeSync(this.#fd, line);
      this.#failing = false;
    } catch (err) {
      this.#failed(err);
      return;
    }
    if (++this.#lines > this.#pids.size + COMPACT_SLACK) {
      try {
        const fd = this.#compact();
        closeSync(this.#fd);
        this.#fd = fd;
      } catch (err) {
        // The old file stays in use; the next append tries again.
        this.#failed(err);
      }
    }
  }

  #failed(err: unknown): void {
    const first = !this.#failing;
    this.#failing = true;
    this.#onWriteError(err as NodeJS.ErrnoException, first);
  }

  /** Writes the live entries to a new file, swaps it in, and opens it for appending. */
  #compact(): number {
    const tmp = `${this.#path}.tmp`;
    writeFileSync(tmp, [...this.#pids].map(([id, pid]) => `R ${pid} ${id}\n`).join(''), { mode: 0o600 });
    renameSync(tmp, this.#path);
    this.#lines = this.#pids.size;
    return openSync(this.#path, 'a');
  }
}
