// A plugin's stdio: its stdout/stderr FIFOs read through epoll (net.Socket on
// an O_NONBLOCK fd) and copied into its log files. No stdin, ever.
//
// Ordering: open() opens the read ends and the log files before the task
// exists, so nothing the plugin writes can block on a missing reader. After
// the task exits, the shim closes its write ends and each copy loop ends at
// EOF; `done` resolves once both files are flushed and closed. close() waits
// for that (bounded); destroy() drops everything at once. Both idempotent.
import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { openReadEnd, type FifoSet } from './fifo.js';
import { RotatingLogFile, type FdHooks, type RotationOptions } from './log-file.js';

export type StreamName = 'stdout' | 'stderr';
export const STREAMS: readonly StreamName[] = ['stdout', 'stderr'];

/**
 * blocking: lossless; when the disk is slower than the plugin, reading stops
 * and the plugin blocks in write() (Docker's blocking log mode).
 * non-blocking: up to bufferSize bytes wait for the disk; the rest is dropped
 * and counted.
 */
export type LogMode = 'blocking' | 'non-blocking';

export interface StdioOptions {
  rotation?: RotationOptions;
  mode?: LogMode;
  /** Non-blocking mode's buffer per stream. Default 1 MiB. */
  bufferSize?: number;
  onBytes?: (stream: StreamName, bytes: number) => void;
  onDropped?: (stream: StreamName, bytes: number) => void;
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
  /** Resolves when both streams reached EOF and their files are closed. */
  readonly done: Promise<void>;
  readonly #pipes: Pipe[];
  #destroyed = false;

  private constructor(fifos: FifoSet, pipes: Record<StreamName, Pipe>, options: StdioOptions) {
    this.fifos = fifos;
    this.#pipes = [pipes.stdout, pipes.stderr];
    this.files = { stdout: pipes.stdout.file, stderr: pipes.stderr.file };
    const mode = options.mode ?? 'blocking';
    const bufferSize = options.bufferSize ?? 1 << 20;
    for (const stream of STREAMS) this.#copy(stream, pipes[stream], mode, bufferSize, options);
    this.done = Promise.all(this.#pipes.map((p) => (p.file.closed ? undefined : once(p.file, 'close').catch(() => undefined)))).then(
      () => undefined,
    );
  }

  /** Opens the FIFOs' read ends and the log files under logDir, both streams at once. */
  static async open(fifos: FifoSet, logDir: string, options: StdioOptions = {}): Promise<PluginIO> {
    await mkdir(logDir, { recursive: true, mode: 0o750 });
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

  #copy(stream: StreamName, { socket, file }: Pipe, mode: LogMode, bufferSize: number, options: StdioOptions): void {
    const { onBytes, onDropped } = options;
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
    socket.on('data', (chunk: Buffer) => {
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
    });
    const end = (): void => {
      flush();
      file.end();
    };
    socket.once('end', end);
    // A read error ends the stream like EOF; the file keeps what arrived.
    socket.once('error', end);
    file.once('error', () => {
      flush();
      socket.destroy();
    });
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

  /** Closes FIFO read ends at once; what was read is still written out, the rest stays in the pipes. */
  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    for (const { socket, file } of this.#pipes) {
      socket.destroy();
      // A file still writing finishes its in-flight write and closes.
      if (!file.writableFinished) file.end();
    }
  }
}
