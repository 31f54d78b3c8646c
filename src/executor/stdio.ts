// A plugin's stdio: its stdout/stderr pipes (or FIFOs, see stdio-sets.ts)
// read through epoll (net.Socket on an O_NONBLOCK fd) and copied into its
// log file, both streams in the order they were read, as CRI records. No
// stdin, ever.
//
// Ordering: prepare() opens the log file while containerd creates the
// container; attach() gives it the read ends, before the task exists for
// FIFOs (nothing the plugin writes can find no reader), after Tasks.Create
// and before Start for pipes (the shim makes them). When the task is
// deleted, the shim closes its write ends and each copy loop ends at EOF;
// `done` resolves once the file is flushed and closed. close() waits for
// that (bounded); destroy() drops everything at once. Both idempotent.
//
// A file that cannot be written never stalls a stream for good: no space
// holds the output back until there is room (the file retries); a file that
// gives up leaves its stream read and dropped, so the plugin runs on.
import { once } from 'node:events';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { close as closeCb } from 'node:fs';
import { growPipe, pipeSize } from './libc.js';
import { frame } from './cri-log.js';
import { RotatingLogFile, makeLogDir, type FdHooks, type RotationOptions, type WriteFailure, type WriteRecovery } from './log-file.js';
import type { StdioSet } from './stdio-sets.js';

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
  /** Non-blocking mode's buffer (both streams). Default 1 MiB. */
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

// Every stream of a thread reads into one buffer: a read is copied out
// (written to its file, or queued) before the callback returns, and
// callbacks never overlap. As large as a pipe grows.
const READ_BUFFER = 1 << 20;
let readBuffer: Buffer | undefined;
const sharedBuffer = (): Buffer => (readBuffer ??= Buffer.allocUnsafe(READ_BUFFER));

// A stream is read as it comes until a read brings a page or more
// (PACE_READ): then it is held back a while before it is read again, so
// that a plugin writing without pause is read in a few large reads instead
// of one per write (a busybox writes 4 KiB at a time; read as it arrives,
// that is a wake, a read and a write per 4 KiB: 95 % of a flood's reads
// were of 4–8 KiB, and holding streams 20 ms took them to 70–100 KiB and
// plugind's CPU for the flood to about half). A read of GROW_READ or more
// grows the pipe to READ_BUFFER. How long a stream is held adapts to its
// rate: a read that found the pipe half full halves it (down to 1 ms, then
// the stream is read at once), so that the plugin does not block on a full
// pipe; one that found an eighth or less doubles it, up to PACE_MAX_MS.
// Output a plugin writes now and then is read, and written, as it comes.
const PACE_READ = 4096;
const GROW_READ = 16 << 10;
const PACE_MAX_MS = 20;
/** A pipe's size until it is grown (the kernel's default). */
const PIPE_DEFAULT = 64 << 10;

/**
 * A stream's pace: called after a read of n bytes from a pipe of capacity
 * bytes, returns how long to hold the stream (0: read on).
 */
export function pacer(): (n: number, capacity: number) => number {
  let hold = PACE_MAX_MS;
  return (n, capacity) => {
    if (n < PACE_READ) return 0;
    if (n >= capacity / 2) {
      if (hold === 1) return 0;
      hold = Math.max(1, hold >> 1);
    } else if (n <= capacity / 8) hold = Math.min(PACE_MAX_MS, hold * 2);
    return hold;
  };
}

/**
 * Streams held back, by how long: each batch is resumed together when the
 * hold of its first stream ends (those held later in it are held less), so
 * that a thread's paced streams cost one wake per hold, not one each.
 */
const held = new Map<number, Set<net.Socket>>();
function holdBack(socket: net.Socket, ms: number): void {
  let batch = held.get(ms);
  if (!batch) {
    const due = (batch = new Set());
    held.set(ms, due);
    setTimeout(() => {
      held.delete(ms);
      for (const s of due) if (!s.destroyed) s.resume();
    }, ms);
  }
  batch.add(socket);
}

interface Pipe {
  socket: net.Socket;
  /** The stream's chunk handler, called by the socket's onread: false stops reading. */
  onChunk: (chunk: Buffer) => boolean;
}

/** The log file's name in a plugin's log dir: `plugin.log` and its rotated `plugin.log.N`. */
export const LOG_NAME = 'plugin';

export class PluginIO {
  /** Where the streams come from (the set is removed with the plugin's task). */
  readonly set: StdioSet;
  /** Both streams, in the order they were read, as CRI records (see cri-log.ts). */
  readonly file: RotatingLogFile;
  /** Resolves when both streams reached EOF (or were destroyed) and the file is closed. */
  readonly done: Promise<void>;
  #settle!: () => void;
  #pipes: Record<StreamName, Pipe> | undefined;
  readonly #options: StdioOptions;
  /** The stream that wrote last: what a failure of the shared file is said and counted against. */
  #last: StreamName = 'stdout';
  #destroyed = false;

  private constructor(set: StdioSet, file: RotatingLogFile, options: StdioOptions) {
    this.set = set;
    this.file = file;
    this.#options = options;
    this.done = new Promise((resolve) => (this.#settle = resolve));
  }

  /**
   * Opens the log file under logDir; the streams follow with attach().
   * Until then nothing is read.
   */
  static async prepare(set: StdioSet, logDir: string, options: StdioOptions = {}): Promise<PluginIO> {
    await makeLogDir(logDir);
    const file = new RotatingLogFile(logDir, LOG_NAME, options.rotation, options.fdHooks ? { fdHooks: options.fdHooks } : {});
    try {
      await Promise.race([once(file, 'ready'), once(file, 'error').then(([e]) => Promise.reject(e as Error))]);
    } catch (err) {
      file.destroy();
      throw err;
    }
    return new PluginIO(set, file, options);
  }

  /** Whether attach() was called. */
  get attached(): boolean {
    return this.#pipes !== undefined;
  }

  /**
   * Starts copying both streams from these read ends (O_NONBLOCK, now
   * this object's to close). After destroy() they are closed at once.
   */
  attach(fds: Record<StreamName, number>): void {
    if (this.#pipes) throw new Error('PluginIO: attached twice');
    const pipes = {} as Record<StreamName, Pipe>;
    for (const stream of STREAMS) pipes[stream] = this.#pipe(fds[stream]);
    this.#pipes = pipes;
    if (this.#destroyed) {
      for (const stream of STREAMS) pipes[stream].socket.destroy();
      return;
    }
    void this.#copy(this.#options).then(this.#settle);
  }

  #pipe(fd: number): Pipe {
    let capacity = PIPE_DEFAULT;
    let grown = false;
    const paceOf = pacer();
    const pipe: Pipe = { socket: undefined as unknown as net.Socket, onChunk: () => true };
    // onread (a buffer the caller owns, no 'data' events) is a constructor
    // option too, though @types/node lists it for connect() only.
    const socket = new net.Socket({
      fd,
      readable: true,
      writable: false,
      onread: {
        buffer: sharedBuffer,
        callback: (n: number, buf: Uint8Array): boolean => {
          const more = pipe.onChunk((buf as Buffer).subarray(0, n));
          if (n < PACE_READ || !more) return more;
          if (!grown && n >= GROW_READ) {
            grown = true;
            capacity = growPipe(fd, READ_BUFFER) || pipeSize(fd) || PIPE_DEFAULT;
          }
          const hold = paceOf(n, capacity);
          if (hold === 0) return true;
          holdBack(socket, hold);
          return false;
        },
      },
    } as net.SocketConstructorOpts);
    pipe.socket = socket;
    return pipe;
  }

  /** prepare() and attach() at once, the read ends opened by open(). */
  static async open(set: StdioSet, open: () => Promise<Record<StreamName, number>>, logDir: string, options: StdioOptions = {}): Promise<PluginIO> {
    const [io, fds] = await Promise.allSettled([PluginIO.prepare(set, logDir, options), open()]);
    if (io.status === 'fulfilled' && fds.status === 'fulfilled') {
      io.value.attach(fds.value);
      return io.value;
    }
    if (io.status === 'fulfilled') io.value.destroy();
    if (fds.status === 'fulfilled') for (const fd of Object.values(fds.value)) closeCb(fd, () => {});
    throw (io.status === 'rejected' ? io.reason : (fds as PromiseRejectedResult).reason) as Error;
  }

  /**
   * Copies both streams into the file, each chunk framed as CRI records;
   * resolves when the file is closed and, if it gave up first, both FIFOs
   * are read to the end. A chunk is the shared read buffer, framed into
   * another shared buffer: the file writes it at once or keeps a copy.
   */
  #copy(options: StdioOptions): Promise<void> {
    const { file } = this;
    const pipes = this.#pipes as Record<StreamName, Pipe>;
    const mode = options.mode ?? 'blocking';
    const bufferSize = options.bufferSize ?? 1 << 20;
    const { onBytes, onDropped } = options;
    let fileFailed = false;
    const fileClosed = file.closed ? Promise.resolve() : new Promise((resolve) => file.once('close', resolve));
    let open = STREAMS.length;
    const socketsClosed: Promise<unknown>[] = [];
    for (const stream of STREAMS) {
      const { socket } = pipes[stream];
      socketsClosed.push(new Promise((resolve) => socket.once('close', resolve)));
      const resume = (): void => {
        socket.resume();
      };
      const pipe = pipes[stream];
      pipe.onChunk = (chunk) => {
        onBytes?.(stream, chunk.length);
        if (fileFailed) {
          onDropped?.(stream, chunk.length);
          return true;
        }
        const records = frame(stream, chunk);
        this.#last = stream;
        if (mode === 'non-blocking') {
          if (file.writableLength + chunk.length > bufferSize) {
            onDropped?.(stream, chunk.length);
            return true;
          }
          file.writeNow(records);
          return true;
        }
        if (file.writeNow(records)) return true;
        // The file holds a megabyte it could not write yet: stop reading
        // until it is out, and the plugin blocks in write(). (Once: a
        // resume can bring several chunks before the file drains.)
        file.off('drain', resume);
        file.once('drain', resume);
        return false;
      };
      // The file ends with the last stream; a read error ends a stream like EOF.
      let ended = false;
      const end = (): void => {
        if (ended) return;
        ended = true;
        if (--open === 0) file.end();
      };
      socket.once('end', end);
      socket.once('error', end);
    }
    // The file gave up (what it held is counted as dropped): the rest of
    // both streams is read and dropped, so that the plugin is not blocked
    // by pipes nobody reads. Switched as the file gives up, not at its
    // 'error' event, which follows its fd's close: no chunk goes to a dead file.
    const dropRest = (): void => {
      if (fileFailed) return;
      fileFailed = true;
      for (const stream of STREAMS) pipes[stream].socket.resume();
    };
    file.writeHooks = {
      failed: (failure) => {
        options.onWriteError?.(this.#last, failure);
        if (failure.action !== 'give-up') return;
        if (failure.unwritten > 0) onDropped?.(this.#last, failure.unwritten);
        dropRest();
      },
      recovered: (recovery) => options.onWriteRecovered?.(this.#last, recovery),
    };
    // Any other error of the file (its close failed, say) ends its writes the same way.
    file.once('error', dropRest);
    return fileClosed.then(() => (fileFailed ? Promise.all(socketsClosed) : undefined)).then(() => undefined);
  }

  /**
   * Waits up to timeoutMs for EOF and flush, then stops reading and waits
   * (as long again at most) for what was read to reach the file. True when
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
    for (const stream of STREAMS) this.#pipes?.[stream].socket.destroy();
    const { file } = this;
    // Never attached: nothing else ends the file, nor settles done.
    if (!this.#pipes) file.once('close', this.#settle);
    if (file.failing && !file.destroyed) {
      this.#options.onDropped?.(this.#last, file.writableLength);
      file.destroy();
    } else if (!file.writableFinished) {
      // A file still writing finishes its in-flight write and closes.
      file.end();
    }
  }
}
