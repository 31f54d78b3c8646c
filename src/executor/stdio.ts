// A plugin's stdio: its stdout/stderr FIFOs read through epoll (net.Socket on
// an O_NONBLOCK fd) and copied into its log files. No stdin, ever.
//
// Ordering: open() opens the read ends and the log files before the task
// exists, so nothing the plugin writes can block on a missing reader. After
// the task exits, the shim closes its write ends and each copy loop ends at
// EOF; `done` resolves once both files are flushed and closed. close() waits
// for that (bounded); destroy() drops everything at once. Both idempotent.
//
// A file that cannot be written never stalls a stream for good: no space
// holds the output back until there is room (the file retries); a file that
// gives up leaves its stream read and dropped, so the plugin runs on.
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { openReadEnd, type FifoSet } from './fifo.js';
import { RotatingLogFile, makeLogDir, type FdHooks, type RotationOptions, type WriteFailure, type WriteRecovery } from './log-file.js';

export type StreamName = 'stdout' | 'stderr';
export const STREAMS: readonly StreamName[] = ['stdout', 'stderr'];

/**
 * blocking: lossless; when the disk is slower than the plugin (or full),
 * reading stops and the plugin blocks in write() (Docker's blocking log mode).
 * non-blocking: up to bufferSize bytes wait for the disk; the rest is dropped
 * and counted.
 * In either mode a file that fails for good (an error other than no space or
 * a missing dir) drops and counts the rest of its stream.
 */
export type LogMode = 'blocking' | 'non-blocking';

export interface StdioOptions {
  rotation?: RotationOptions;
  mode?: LogMode;
  /** Non-blocking mode's buffer per stream. Default 1 MiB. */
  bufferSize?: number;
  onBytes?: (stream: StreamName, bytes: number) => void;
  onDropped?: (stream: StreamName, bytes: number) => void;
  /**
   * Every failed attempt to write or rotate a log file. Bytes a file gives
   * up on are counted through onDropped as well.
   */
  onWriteError?: (stream: StreamName, failure: WriteFailure) => void;
  /** Writes work again after failing (once per episode). */
  onWriteRecovered?: (stream: StreamName, recovery: WriteRecovery) => void;
  fdHooks?: FdHooks;
}

const BATCH = 512 << 10;
const FLUSH_MS = 5;

interface Pipe {
  socket: net.Socket;
  file: RotatingLogFile;
}

export class PluginIO {
  readonly fifos: FifoSet;
  readonly files: Readonly<Record<StreamName, RotatingLogFile>>;
  /** Resolves when both streams reached EOF (or were destroyed) and their files are closed. */
  readonly done: Promise<void>;
  readonly #pipes: Pipe[];
  readonly #onDropped: StdioOptions['onDropped'];
  #destroyed = false;

  private constructor(fifos: FifoSet, pipes: Record<StreamName, Pipe>, options: StdioOptions) {
    this.fifos = fifos;
    this.#pipes = [pipes.stdout, pipes.stderr];
    this.files = { stdout: pipes.stdout.file, stderr: pipes.stderr.file };
    this.#onDropped = options.onDropped;
    const mode = options.mode ?? 'blocking';
    const bufferSize = options.bufferSize ?? 1 << 20;
    this.done = Promise.all(STREAMS.map((stream) => this.#copy(stream, pipes[stream], mode, bufferSize, options))).then(() => undefined);
  }

  /** Opens the FIFOs' read ends and the log files under logDir, both streams at once. */
  static async open(fifos: FifoSet, logDir: string, options: StdioOptions = {}): Promise<PluginIO> {
    await makeLogDir(logDir);
    const opened: Array<net.Socket | RotatingLogFile> = [];
    const openStream = async (stream: StreamName): Promise<Pipe> => {
      const file = new RotatingLogFile(logDir, stream, options.rotation, options.fdHooks ? { fdHooks: options.fdHooks } : {});
      opened.push(file);
      const ready = Promise.race([once(file, 'ready'), once(file, 'error').then(([e]) => Promise.reject(e as Error))]);
      const fd = await openReadEnd(fifos[stream]);
      const socket = new net.Socket({ fd, readable: true, writable: false });
      opened.push(socket);
      await ready;
      return { socket, file };
    };
    const results = await Promise.allSettled(STREAMS.map(openStream));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      for (const o of opened) o.destroy();
      throw failed.reason;
    }
    const [stdout, stderr] = results.map((r) => (r as PromiseFulfilledResult<Pipe>).value) as [Pipe, Pipe];
    return new PluginIO(fifos, { stdout, stderr }, options);
  }

  /** Copies one stream; resolves when its file is closed and, if the file gave up first, its FIFO read to the end. */
  #copy(stream: StreamName, { socket, file }: Pipe, mode: LogMode, bufferSize: number, options: StdioOptions): Promise<void> {
    const { onBytes, onDropped } = options;
    const socketClosed = new Promise((resolve) => socket.once('close', resolve));
    let fileFailed = false;
    const fileClosed = file.closed ? Promise.resolve() : new Promise((resolve) => file.once('close', resolve));
    // Under a flood, reads bring a few KiB each, and a write per read would
    // cost a threadpool round trip and a syscall per few KiB. So a chunk that
    // follows the previous one closely corks the file, and the batch is
    // written in one writev when BATCH bytes wait or FLUSH_MS have passed.
    // A chunk after a quiet spell (a plugin's ordinary logging) is written
    // at once: it waits in plugind's memory no longer than it must.
    let timer: NodeJS.Timeout | undefined;
    let last = 0;
    const flush = (): void => {
      if (timer === undefined) return;
      clearTimeout(timer);
      timer = undefined;
      file.uncork();
    };
    const write = (chunk: Buffer): boolean => {
      const now = performance.now();
      const busy = now - last < FLUSH_MS;
      last = now;
      if (timer === undefined && busy) {
        file.cork();
        timer = setTimeout(flush, FLUSH_MS);
      }
      const ok = file.write(chunk);
      if (file.writableLength >= BATCH) flush();
      return ok;
    };
    const copyChunk = (chunk: Buffer): void => {
      onBytes?.(stream, chunk.length);
      if (mode === 'non-blocking') {
        if (file.writableLength + chunk.length > bufferSize) {
          onDropped?.(stream, chunk.length);
          return;
        }
        write(chunk);
      } else if (!write(chunk)) {
        socket.pause();
        flush();
        file.once('drain', () => socket.resume());
      }
    };
    socket.on('data', copyChunk);
    const end = (): void => {
      flush();
      file.end();
    };
    socket.once('end', end);
    // A read error ends the stream like EOF; the file keeps what arrived.
    socket.once('error', end);
    // The file gave up (what it held is counted as dropped): the rest of
    // the stream is read and dropped, so that the plugin is not blocked by a
    // pipe nobody reads. Switched as the file gives up, not at its 'error'
    // event, which follows its fd's close: no chunk goes to a dead file.
    const dropRest = (): void => {
      if (fileFailed) return;
      fileFailed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      socket.off('data', copyChunk);
      socket.on('data', (chunk: Buffer) => {
        onBytes?.(stream, chunk.length);
        onDropped?.(stream, chunk.length);
      });
      socket.resume();
    };
    file.writeHooks = {
      failed(failure) {
        options.onWriteError?.(stream, failure);
        if (failure.action !== 'give-up') return;
        if (failure.unwritten > 0) onDropped?.(stream, failure.unwritten);
        dropRest();
      },
      recovered: (recovery) => options.onWriteRecovered?.(stream, recovery),
    };
    // Any other error of the file (its close failed, say) ends its writes the same way.
    file.once('error', dropRest);
    return fileClosed.then(() => (fileFailed ? socketClosed : undefined)).then(() => undefined);
  }

  /**
   * Waits up to timeoutMs for EOF and flush, then stops reading and waits
   * (as long again at most) for what was read to reach the files. True when
   * both streams ended cleanly: no writer holds the FIFOs any more.
   */
  async close(timeoutMs = 2000): Promise<boolean> {
    if (this.#destroyed) return false;
    const clean = await Promise.race([this.done.then(() => true), sleep(timeoutMs, false, { ref: false })]);
    this.destroy();
    if (!clean) await Promise.race([this.done, sleep(timeoutMs, undefined, { ref: false })]);
    return clean;
  }

  /**
   * Closes FIFO read ends at once; what was read is still written out, the
   * rest stays in the pipes. A file waiting for room cannot write it out:
   * it closes now, and what it held is counted as dropped.
   */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const [i, { socket, file }] of this.#pipes.entries()) {
      socket.destroy();
      if (file.failing && !file.destroyed) {
        this.#onDropped?.(STREAMS[i] as StreamName, file.writableLength);
        file.destroy();
      } else if (!file.writableFinished) {
        // A file still writing finishes its in-flight write and closes.
        file.end();
      }
    }
  }
}
