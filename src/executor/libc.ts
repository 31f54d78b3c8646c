// The few libc calls Node has no binding for, through koffi (prebuilt FFI,
// no compiler at install): mkfifo, and fcntl to grow a pipe. Loaded on first
// use, so threads that never touch a FIFO (the coordinator, the CLI) do not
// load it.
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';

interface Libc {
  mkfifo(path: string, mode: number): number;
  fcntl(fd: number, cmd: number, ...args: unknown[]): number;
  errno(): number;
}

const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;

let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const lib = koffi.load('libc.so.6');
  libc = {
    mkfifo: lib.func('int mkfifo(const char *path, uint32_t mode)') as Libc['mkfifo'],
    fcntl: lib.func('int fcntl(int fd, int cmd, ...)') as Libc['fcntl'],
    errno: () => koffi.errno(),
  };
  return libc;
}

function errnoError(call: string, path: string, errno: number): NodeJS.ErrnoException {
  const code = getSystemErrorName(-errno);
  const err = new Error(`${call} ${path}: ${code}`) as NodeJS.ErrnoException;
  Object.assign(err, { code, errno: -errno, syscall: call, path });
  return err;
}

/** Makes a FIFO (synchronously: one syscall, no thread hop). */
export function mkfifoSync(path: string, mode = 0o600): void {
  const c = load();
  if (c.mkfifo(path, mode) !== 0) throw errnoError('mkfifo', path, c.errno());
}

/**
 * Grows the pipe behind fd to at least bytes (the kernel rounds up to a
 * power of two of pages; /proc/sys/fs/pipe-max-size caps it for processes
 * without CAP_SYS_RESOURCE). Returns the pipe's size after, or 0 if the
 * kernel refused (the pipe keeps its size; nothing else changes).
 */
export function growPipe(fd: number, bytes: number): number {
  const c = load();
  const size = c.fcntl(fd, F_SETPIPE_SZ, 'int', bytes);
  return size > 0 ? size : 0;
}

/** The size of the pipe behind fd, or 0 if fd is not a pipe. */
export function pipeSize(fd: number): number {
  const size = load().fcntl(fd, F_GETPIPE_SZ, 'int', 0);
  return size > 0 ? size : 0;
}
