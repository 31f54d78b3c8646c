// Reads a plugin's log files back: rotated files in order, then the live
// one, optionally only the last `tail` bytes, optionally following the live
// file (across rotations) until the plugin's output ends.
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { RotatingLogFile } from './log-file.js';
import type { StreamName } from './stdio.js';

export interface ReadOptions {
  /** Only the last this many bytes (across files). */
  tail?: number;
  /** From this byte on, counted from the start of the oldest file (instead of tail). */
  from?: number;
  /** Keep reading new output while `live` is open. */
  follow?: boolean;
  /** The file being written now, when the plugin runs. */
  live?: RotatingLogFile | undefined;
  /** Ends a follow that is waiting for output (a client went away). */
  signal?: AbortSignal | undefined;
}

export interface LogChunk {
  stream: StreamName;
  data: Buffer;
}

const READ_SIZE = 256 << 10;

/** The stream's files that exist, oldest first, the live file last. */
export async function existingFiles(dir: string, name: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return [];
  }
  const prefix = `${name}.log.`;
  const rotated = entries
    .filter((e) => e.startsWith(prefix) && /^\d+$/.test(e.slice(prefix.length)))
    .map((e) => ({ e, n: Number(e.slice(prefix.length)) }))
    .sort((a, b) => b.n - a.n)
    .map(({ e }) => join(dir, e));
  return entries.includes(`${name}.log`) ? [...rotated, join(dir, `${name}.log`)] : rotated;
}

async function* readFrom(handle: FileHandle, position: { at: number }): AsyncGenerator<Buffer> {
  for (;;) {
    const buf = Buffer.allocUnsafe(READ_SIZE);
    const { bytesRead } = await handle.read(buf, 0, READ_SIZE, position.at);
    if (bytesRead === 0) return;
    position.at += bytesRead;
    yield buf.subarray(0, bytesRead);
  }
}

export async function* readLog(dir: string, name: string, options: ReadOptions = {}): AsyncGenerator<Buffer> {
  const live = options.follow && options.live && !options.live.closed ? options.live : undefined;
  // Listen before reading, so that nothing written meanwhile is missed.
  let wake: (() => void) | undefined;
  let rotations = 0;
  let closed = false;
  const onWritten = (): void => wake?.();
  const onRotated = (): void => {
    rotations += 1;
    wake?.();
  };
  const onClose = (): void => {
    closed = true;
    wake?.();
  };
  live?.notify.on('written', onWritten);
  live?.notify.on('rotated', onRotated);
  live?.once('close', onClose);
  options.signal?.addEventListener('abort', onClose);
  let seenRotations = 0;
  let handle: FileHandle | undefined;
  try {
    const files = await existingFiles(dir, name);
    const sizes = await Promise.all(files.map((f) => stat(f).then((s) => s.size, () => 0)));
    let skip = options.from ?? Math.max(0, sizes.reduce((a, b) => a + b, 0) - (options.tail ?? Infinity));
    const position = { at: 0 };
    for (const [i, file] of files.entries()) {
      const size = sizes[i] ?? 0;
      if (skip >= size && i < files.length - 1) {
        skip -= size;
        continue;
      }
      handle?.close().catch(() => {});
      try {
        handle = await open(file, 'r');
      } catch {
        handle = undefined;
        continue;
      }
      if (i === files.length - 1) seenRotations = rotations;
      position.at = Math.min(skip, size);
      skip = 0;
      yield* readFrom(handle, position);
    }
    if (!live) return;
    for (;;) {
      if (handle) yield* readFrom(handle, position);
      if (seenRotations < rotations) {
        // The file we read was renamed away: it is complete. Move to the new live file.
        seenRotations += 1;
        await handle?.close().catch(() => {});
        handle = await open(live.path, 'r');
        position.at = 0;
        continue;
      }
      if (closed) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
      if (!handle) handle = await open(live.path, 'r').catch(() => undefined);
    }
  } finally {
    live?.notify.off('written', onWritten);
    live?.notify.off('rotated', onRotated);
    live?.off('close', onClose);
    options.signal?.removeEventListener('abort', onClose);
    await handle?.close().catch(() => {});
  }
}

/** Interleaves several async iterables as their items arrive. */
export async function* merge<T>(sources: AsyncIterable<T>[]): AsyncGenerator<T> {
  const iterators = sources.map((s) => s[Symbol.asyncIterator]());
  const pending = new Map<number, Promise<{ i: number; r: IteratorResult<T> }>>();
  const pull = (i: number): void => {
    pending.set(
      i,
      (iterators[i] as AsyncIterator<T>).next().then((r) => ({ i, r })),
    );
  };
  iterators.forEach((_, i) => pull(i));
  try {
    while (pending.size > 0) {
      const { i, r } = await Promise.race(pending.values());
      if (r.done) {
        pending.delete(i);
        continue;
      }
      pull(i);
      yield r.value;
    }
  } finally {
    // Not awaited: a source blocked in next() would hold this up; sources
    // that wait take an AbortSignal for that.
    for (const it of iterators) void it.return?.(undefined)?.catch(() => {});
  }
}
