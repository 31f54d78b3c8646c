// A plugin's output stream on disk: `<name>.log` plus rotated `<name>.log.1`
// (newest) … `<name>.log.<maxFiles-1>`. Writes are batched (writev of
// whatever queued while the previous write ran), and the Writable's buffer
// is the backpressure signal the copy loop obeys in lossless mode.
import { EventEmitter } from 'node:events';
import { close, fstat, open, rename, unlink, writev } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';

const openP = promisify(open);
const closeP = promisify(close);
const fstatP = promisify(fstat);
const renameP = promisify(rename);
const unlinkP = promisify(unlink);
const writevP = promisify(writev);

export interface RotationOptions {
  /** Rotate before a write would take the file past this many bytes. Default 10 MiB. */
  maxSize?: number;
  /** Files kept, the live one included. Default 3. */
  maxFiles?: number;
}

export const DEFAULT_ROTATION: Required<RotationOptions> = { maxSize: 10 << 20, maxFiles: 3 };

/** Paths of a stream's files, oldest first, the live file last. */
export function logFiles(dir: string, name: string, maxFiles: number): string[] {
  const live = join(dir, `${name}.log`);
  const rotated = Array.from({ length: maxFiles - 1 }, (_, i) => `${live}.${maxFiles - 1 - i}`);
  return [...rotated, live];
}

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
  #bytes = 0;

  constructor(dir: string, name: string, rotation: RotationOptions = {}, highWaterMark = 1 << 20) {
    super({ highWaterMark, decodeStrings: false });
    this.#maxSize = rotation.maxSize ?? DEFAULT_ROTATION.maxSize;
    this.#maxFiles = rotation.maxFiles ?? DEFAULT_ROTATION.maxFiles;
    if (!(this.#maxSize > 0)) throw new RangeError(`log max size ${this.#maxSize}: want a positive number of bytes`);
    if (!Number.isInteger(this.#maxFiles) || this.#maxFiles < 1) throw new RangeError(`log max files ${this.#maxFiles}: want a whole number ≥ 1`);
    this.#dir = dir;
    this.#name = name;
    this.path = join(dir, `${name}.log`);
    this.notify.setMaxListeners(0);
  }

  /** Bytes written to disk so far (all files). */
  get bytesWritten(): number {
    return this.#bytes;
  }

  override _construct(callback: (err?: Error | null) => void): void {
    // 'ready' as fs.WriteStream has it: the file is open.
    this.#open().then(() => {
      callback();
      this.emit('ready');
    }, callback);
  }

  async #open(): Promise<void> {
    this.#fd = await openP(this.path, 'a', 0o640);
    this.#size = (await fstatP(this.#fd)).size;
  }

  async #rotate(): Promise<void> {
    await closeP(this.#fd);
    this.#fd = -1;
    const files = logFiles(this.#dir, this.#name, this.#maxFiles);
    // files: [.N-1, …, .1, live]; drop the oldest, shift the rest up by one.
    if (this.#maxFiles === 1) {
      await unlinkP(this.path).catch(() => {});
    } else {
      await unlinkP(files[0] as string).catch(() => {});
      for (let i = 1; i < files.length; i++) await renameP(files[i] as string, files[i - 1] as string).catch(() => {});
    }
    await this.#open();
    this.notify.emit('rotated');
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#writeAll([chunk]).then(() => callback(), callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.#writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  async #writeAll(buffers: Buffer[]): Promise<void> {
    const total = buffers.reduce((n, b) => n + b.length, 0);
    if (this.#size > 0 && this.#size + total > this.#maxSize) await this.#rotate();
    let pending = buffers;
    while (pending.length > 0) {
      // libuv writes at most IOV_MAX buffers per call: loop until all are out.
      const { bytesWritten: n } = await writevP(this.#fd, pending);
      this.#size += n;
      this.#bytes += n;
      pending = dropBytes(pending, n);
    }
    this.notify.emit('written', total);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const fd = this.#fd;
    this.#fd = -1;
    if (fd < 0) return callback(err);
    close(fd, (closeErr) => callback(err ?? closeErr));
  }
}

/** What is left of a buffer list after its first n bytes were written. */
function dropBytes(buffers: Buffer[], n: number): Buffer[] {
  let skip = n;
  let i = 0;
  while (i < buffers.length && skip >= (buffers[i] as Buffer).length) {
    skip -= (buffers[i] as Buffer).length;
    i++;
  }
  if (i >= buffers.length) return [];
  return [(buffers[i] as Buffer).subarray(skip), ...buffers.slice(i + 1)];
}
