// A plugin's output on disk: `<name>.log` plus rotated `<name>.log.1`
// (newest) … `<name>.log.<maxFiles-1>`. Writes are whole records, a line
// each (see cri-log.ts), and a file rotates between two records: one that
// would take it past its size starts the next file, so each file parses on
// its own and none passes its size (but for a single record larger).
//
// writeNow() writes a chunk at once, in the caller's turn (a write(2) to
// the page cache, no threadpool round trip), whenever nothing is queued.
// Anything that cannot go that way (a rotation due, a write that failed or
// came short, a disk that was slow) is queued on the Writable, whose writes
// are batched (writev of whatever queued while the previous write ran) and
// whose buffer is the backpressure signal the copy loop obeys in lossless
// mode. A write that fails for want of space waits and retries, so a full
// disk holds the output back (as a slow one does) instead of ending it.
import { EventEmitter } from 'node:events';
import { close, fstat, mkdir, open, readdir, rename, unlink, writeSync, writev, writevSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { atBoundary, byteLength, splitBytes } from './buffer-list.js';

const openP = promisify(open);
const closeP = promisify(close);
const fstatP = promisify(fstat);
const renameP = promisify(rename);
const unlinkP = promisify(unlink);
const readdirP = promisify(readdir);
const writevP = promisify(writev);
const mkdirP = promisify(mkdir);

/** Makes a plugin's log dir (and its parents) if it is missing. */
export async function makeLogDir(dir: string): Promise<void> {
  await mkdirP(dir, { recursive: true, mode: 0o750 });
}

/** How a failed log write is counted: a closed set, as it labels a metric. */
export type ErrnoClass = 'ENOSPC' | 'EDQUOT' | 'EIO' | 'ENOENT' | 'other';

function errnoClass(err: unknown): ErrnoClass {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'EIO' || code === 'ENOENT' ? code : 'other';
}

/**
 * What the file does about a failed write or rotation:
 * - retry: no space (ENOSPC, EDQUOT); the write waits and is retried with
 *   backoff until there is room, and nothing is lost.
 * - recreate-dir: the log dir was removed (ENOENT); it is made again and
 *   output goes on in a new live file.
 * - give-up: anything else; the file errors and closes, and `unwritten`
 *   bytes it held are lost.
 */
export type WriteAction = 'retry' | 'recreate-dir' | 'give-up';

export interface WriteFailure {
  error: NodeJS.ErrnoException;
  errno: ErrnoClass;
  action: WriteAction;
  /** The first failure since writes last worked: an episode starts. */
  first: boolean;
  /** With give-up: bytes accepted by write() that will never reach the file. */
  unwritten: number;
}

export interface WriteRecovery {
  /** The errno that started the episode (ENOSPC, ENOENT, …). */
  code: string;
  ms: number;
  /** Failed attempts in the episode. */
  attempts: number;
}

/** Told of every failed attempt, and once when writes work again. */
export interface WriteHooks {
  failed?(failure: WriteFailure): void;
  recovered?(recovery: WriteRecovery): void;
}

// Retries wait 50 ms, doubling to 2 s: a disk that gets room again is used
// within 2 s, and a full one costs a syscall every 2 s per stream.
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 2000;

// A write(2) to the page cache takes microseconds; one that took SLOW_MS
// met a throttled or slow disk, and the file's writes go through the
// threadpool for SLOW_HOLD_MS, so that the thread's other plugins are not
// held up behind it.
const SLOW_MS = 20;
const SLOW_HOLD_MS = 1000;

interface Episode {
  code: string;
  since: number;
  attempts: number;
  delayMs: number;
}

/** A rename whose source is missing (someone deleted a log file) has nothing to move. */
function renameIfThere(from: string, to: string): Promise<void> {
  return renameP(from, to).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

export interface RotationOptions {
  /** Rotate before a write would take the file past this many bytes. Default 10 MiB. */
  maxSize?: number;
  /** Files kept, the live one included. Default 3. */
  maxFiles?: number;
}

/**
 * Told about every fd a log file opens and closes (before the close), so a
 * thread that dies can have its files closed for it.
 */
export interface FdHooks {
  opened(fd: number): void;
  closing(fd: number): void;
}

export const DEFAULT_ROTATION: Required<RotationOptions> = { maxSize: 10 << 20, maxFiles: 3 };

export interface LogFileEvents {
  /** Bytes reached the live file. */
  written: [bytes: number];
  /** The live file was renamed to .1 and a new live file opened. */
  rotated: [];
}

export class RotatingLogFile extends Writable {
  readonly path: string;
  readonly #dir: string;
  readonly #name: string;
  readonly #maxSize: number;
  readonly #maxFiles: number;
  /** Followers listen here; a Writable's own events stay the stream's. */
  readonly notify = new EventEmitter<LogFileEvents>();
  #fd = -1;
  #size = 0;
  /** How many rotated files (.1, .2, …) exist; -1 until first counted. */
  #rotated = -1;

  readonly #fdHooks: FdHooks | undefined;
  /** Set by the file's writer before its first write: it decides what a failure means upstream. */
  writeHooks: WriteHooks | undefined;
  /** Set while writes fail; undefined on the hot path. */
  #episode: Episode | undefined;
  /** The log dir vanished: make it again before the next open. */
  #dirGone = false;
  /** The write in progress, which _destroy lets settle before closing its fd. */
  #writing: Promise<void> | undefined;
  /** Cuts a retry's wait short when the file is destroyed. */
  #wake: (() => void) | undefined;
  /** writeNow() queues until then (performance.now()): the last direct write was slow. */
  #slowUntil = 0;
  /** The next queued buffer is the rest of one written in part: it goes to the same file. */
  #continues = false;

  constructor(dir: string, name: string, rotation: RotationOptions = {}, options: { highWaterMark?: number; fdHooks?: FdHooks } = {}) {
    super({ highWaterMark: options.highWaterMark ?? 1 << 20, decodeStrings: false });
    this.#fdHooks = options.fdHooks;
    this.#maxSize = rotation.maxSize ?? DEFAULT_ROTATION.maxSize;
    this.#maxFiles = rotation.maxFiles ?? DEFAULT_ROTATION.maxFiles;
    if (!(this.#maxSize > 0)) throw new RangeError(`log max size ${this.#maxSize}: want a positive number of bytes`);
    if (!Number.isInteger(this.#maxFiles) || this.#maxFiles < 1) throw new RangeError(`log max files ${this.#maxFiles}: want a whole number ≥ 1`);
    this.#dir = dir;
    this.#name = name;
    this.path = join(dir, `${name}.log`);
    this.notify.setMaxListeners(0);
  }

  override _construct(callback: (err?: Error | null) => void): void {
    // 'ready' as fs.WriteStream has it: the file is open.
    this.#open().then(() => {
      callback();
      this.emit('ready');
    }, callback);
  }

  async #open(): Promise<void> {
    this.#fd = await this.#openLive();
    this.#size = (await fstatP(this.#fd)).size;
  }

  async #openLive(): Promise<number> {
    const fd = await openP(this.path, 'a', 0o640);
    this.#fdHooks?.opened(fd);
    return fd;
  }

  /** Writes are failing and being retried (no space, say). */
  get failing(): boolean {
    return this.#episode !== undefined;
  }

  #closeFd(fd: number): Promise<void> {
    this.#fdHooks?.closing(fd);
    return closeP(fd);
  }

  // A rotation that fails part way is run again from the top: each step
  // copes with having been done already.
  async #rotate(): Promise<void> {
    if (this.#dirGone) {
      await makeLogDir(this.#dir);
      this.#dirGone = false;
      this.#rotated = 0;
    }
    // Rotated files left by an earlier run are counted once, at the first
    // rotation rather than on the create path.
    if (this.#rotated < 0) {
      const names = new Set(await readdirP(this.#dir));
      this.#rotated = 0;
      while (this.#rotated < this.#maxFiles - 1 && names.has(`${this.#name}.log.${this.#rotated + 1}`)) this.#rotated += 1;
    }
    if (this.#fd >= 0) {
      const fd = this.#fd;
      this.#fd = -1;
      await this.#closeFd(fd);
    }
    const rotated = (k: number): string => `${this.path}.${k}`;
    const keep = this.#maxFiles - 1;
    if (keep === 0) {
      await unlinkP(this.path).catch(() => {});
    } else {
      // Shift .k → .k+1 from the oldest down; what would pass .keep is dropped.
      if (this.#rotated === keep) await unlinkP(rotated(keep)).catch(() => {});
      for (let k = Math.min(this.#rotated, keep - 1); k >= 1; k--) await renameIfThere(rotated(k), rotated(k + 1));
      await renameIfThere(this.path, rotated(1));
      this.#rotated = Math.min(this.#rotated + 1, keep);
    }
    this.#fd = await this.#openLive();
    this.#size = 0;
    this.notify.emit('rotated');
  }

  /**
   * Writes chunk (a buffer, or buffers in order) now if nothing waits before
   * it, else queues a copy of what is left (the caller may reuse chunk once
   * this returns). Returns what
   * write() returns: false once the queue is over its high-water mark.
   */
  writeNow(chunk: Buffer | Buffer[]): boolean {
    let parts = Array.isArray(chunk) ? chunk : [chunk];
    const total = byteLength(parts);
    let off = 0;
    // What would pass the limit is queued: #writeAll splits it between records.
    const fits = this.#size + total <= this.#maxSize;
    if (fits && this.#fd >= 0 && this.writableLength === 0 && this.#episode === undefined && !this.writableEnded && !this.destroyed) {
      const t0 = performance.now();
      if (t0 >= this.#slowUntil) {
        try {
          while (off < total) {
            const n = parts.length === 1 ? writeSync(this.#fd, parts[0] as Buffer) : writevSync(this.#fd, parts);
            this.#size += n;
            off += n;
            if (off < total) parts = splitBytes(parts, n)[1];
          }
        } catch {
          // The queued write meets the error again, and reports and handles it.
        }
        if (performance.now() - t0 >= SLOW_MS) this.#slowUntil = performance.now() + SLOW_HOLD_MS;
        if (off > 0) this.notify.emit('written', off);
        if (off === total) return true;
        if (off > 0) this.#continues = true;
      }
    }
    return this.write(Buffer.concat(parts));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#start([chunk], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.#start(chunks.map((c) => c.chunk), callback);
  }

  #start(buffers: Buffer[], callback: (err?: Error | null) => void): void {
    const writing = this.#writeAll(buffers);
    this.#writing = writing;
    writing.then(() => callback(), callback);
  }

  // A file takes records up to maxSize and rotates before the one that
  // would pass it (an empty file takes even that one): what is kept is
  // about (maxFiles-1)·maxSize plus the live file, no record split between
  // two files. `pending` is always
  // what has not reached the file: after a short write or a failure, the
  // next attempt starts at the first byte not written, in the same file.
  async #writeAll(buffers: Buffer[]): Promise<void> {
    const total = byteLength(buffers);
    let pending = buffers;
    let cut = this.#continues;
    this.#continues = false;
    while (pending.length > 0) {
      try {
        const first = pending[0] as Buffer;
        if (!cut && this.#size + first.length > this.#maxSize) {
          // Whole records up to the limit go in this file, the rest starts the next.
          // An empty file takes a record larger than the limit whole, and only that one.
          const room = this.#maxSize - this.#size;
          let at = room > 0 ? first.lastIndexOf(0x0a, room - 1) : -1;
          if (at < 0 && this.#size === 0) at = first.indexOf(0x0a);
          if (at >= 0 && at + 1 < first.length) pending = [first.subarray(0, at + 1), first.subarray(at + 1), ...pending.slice(1)];
          else if (at < 0 && this.#size > 0) {
            await this.#rotate();
            continue;
          }
        }
        // As many whole buffers as fit, at least one. libuv writes at most
        // IOV_MAX buffers per call, and a write can be short (a disk
        // filling up): one call per turn, until all are out.
        const room = this.#maxSize - this.#size;
        let k = 1;
        let bytes = (pending[0] as Buffer).length;
        while (k < pending.length && bytes + (pending[k] as Buffer).length <= room) bytes += (pending[k++] as Buffer).length;
        const { bytesWritten: n } = await writevP(this.#fd, pending.slice(0, k));
        this.#size += n;
        cut = !atBoundary(pending, n);
        pending = splitBytes(pending, n)[1];
      } catch (err) {
        await this.#failed(err as NodeJS.ErrnoException, () => this.writableLength - total + byteLength(pending));
        continue;
      }
      if (this.#episode) this.#recovered();
    }
    this.notify.emit('written', total);
  }

  /** Reports a failure, then waits out the backoff; throws when the file gives up (or was destroyed). */
  async #failed(error: NodeJS.ErrnoException, unwritten: () => number): Promise<void> {
    if (this.destroyed) throw error;
    const errno = errnoClass(error);
    const action: WriteAction = errno === 'ENOSPC' || errno === 'EDQUOT' ? 'retry' : errno === 'ENOENT' ? 'recreate-dir' : 'give-up';
    const first = this.#episode === undefined;
    const episode = (this.#episode ??= { code: error.code ?? errno, since: performance.now(), attempts: 0, delayMs: RETRY_FIRST_MS });
    episode.attempts += 1;
    this.writeHooks?.failed?.({ error, errno, action, first, unwritten: action === 'give-up' ? unwritten() : 0 });
    if (action === 'give-up') throw error;
    // ENOENT comes only from the dir (writes go to an open fd, renames of
    // missing files are skipped): the next rotation makes it again.
    if (action === 'recreate-dir') this.#dirGone = true;
    const ms = episode.delayMs;
    episode.delayMs = Math.min(ms * 2, RETRY_MAX_MS);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
    if (this.destroyed) throw error;
  }

  #recovered(): void {
    const { code, since, attempts } = this.#episode as Episode;
    this.#episode = undefined;
    this.writeHooks?.recovered?.({ code, ms: Math.round(performance.now() - since), attempts });
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    // A write waiting for room stops now; one in a syscall finishes first,
    // so its fd is not closed (and reused) under it.
    this.#wake?.();
    const settled = this.#writing?.then(
      () => {},
      () => {},
    );
    void (settled ?? Promise.resolve()).then(() => {
      const fd = this.#fd;
      this.#fd = -1;
      if (fd < 0) return callback(err);
      this.#closeFd(fd).then(
        () => callback(err),
        (closeErr: Error) => callback(err ?? closeErr),
      );
    });
  }
}
