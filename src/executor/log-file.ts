// A plugin's output stream on disk: `<name>.log` plus rotated `<name>.log.1`
// (newest) … `<name>.log.<maxFiles-1>`. Writes are batched (writev of
// whatever queued while the previous write ran), and the Writable's buffer
// is the backpressure signal the copy loop obeys in lossless mode.
import { EventEmitter } from 'node:events';
import { close, fstat, open, readdir, rename, unlink, writev } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';

const openP = promisify(open);
const closeP = promisify(close);
const fstatP = promisify(fstat);
const renameP = promisify(rename);
const unlinkP = promisify(unlink);
const readdirP = promisify(readdir);
const writevP = promisify(writev);

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

  #closeFd(fd: number): Promise<void> {
    this.#fdHooks?.closing(fd);
    return closeP(fd);
  }

  async #rotate(): Promise<void> {
    // Rotated files left by an earlier run are counted once, at the first
    // rotation rather than on the create path.
    if (this.#rotated < 0) {
      const names = new Set(await readdirP(this.#dir));
      this.#rotated = 0;
      while (this.#rotated < this.#maxFiles - 1 && names.has(`${this.#name}.log.${this.#rotated + 1}`)) this.#rotated += 1;
    }
    await this.#closeFd(this.#fd);
    this.#fd = -1;
    const rotated = (k: number): string => `${this.path}.${k}`;
    const keep = this.#maxFiles - 1;
    if (keep === 0) {
      await unlinkP(this.path).catch(() => {});
    } else {
      // Shift .k → .k+1 from the oldest down; what would pass .keep is dropped.
      if (this.#rotated === keep) await unlinkP(rotated(keep)).catch(() => {});
      for (let k = Math.min(this.#rotated, keep - 1); k >= 1; k--) await renameP(rotated(k), rotated(k + 1));
      await renameP(this.path, rotated(1));
      this.#rotated = Math.min(this.#rotated + 1, keep);
    }
    this.#fd = await this.#openLive();
    this.#size = 0;
    this.notify.emit('rotated');
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.#writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  // Files are filled to exactly maxSize before rotating, so what is kept is
  // (maxFiles-1)·maxSize plus the live file, whatever the write sizes were.
  async #writeAll(buffers: Buffer[]): Promise<void> {
    const total = buffers.reduce((n, b) => n + b.length, 0);
    let pending = buffers;
    while (pending.length > 0) {
      if (this.#size >= this.#maxSize) await this.#rotate();
      const [now, later] = splitBytes(pending, this.#maxSize - this.#size);
      let out = now;
      while (out.length > 0) {
        // libuv writes at most IOV_MAX buffers per call: loop until all are out.
        const { bytesWritten: n } = await writevP(this.#fd, out);
        this.#size += n;
        out = splitBytes(out, n)[1];
      }
      pending = later;
    }
    this.notify.emit('written', total);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const fd = this.#fd;
    this.#fd = -1;
    if (fd < 0) return callback(err);
    this.#closeFd(fd).then(
      () => callback(err),
      (closeErr: Error) => callback(err ?? closeErr),
    );
  }
}

/** Splits a buffer list after its first n bytes (without copying). */
function splitBytes(buffers: Buffer[], n: number): [Buffer[], Buffer[]] {
  const head: Buffer[] = [];
  let left = n;
  let i = 0;
  for (; i < buffers.length && left > 0; i++) {
    const b = buffers[i] as Buffer;
    if (b.length <= left) {
      head.push(b);
      left -= b.length;
    } else {
      head.push(b.subarray(0, left));
      return [head, [b.subarray(left), ...buffers.slice(i + 1)]];
    }
  }
  return [head, buffers.slice(i)];
}
