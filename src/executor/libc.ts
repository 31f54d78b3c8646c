// The few libc calls Node has no binding for, through koffi (prebuilt FFI,
// no compiler at install): mkfifo, fcntl to grow a pipe, and mount/umount2
// for a Docker plugin's propagated mount. Loaded on first
// use, so threads that never touch a FIFO (the coordinator, the CLI) do not
// load it.
import { createRequire } from 'node:module';
import { getSystemErrorName } from 'node:util';

interface Libc {
  mkfifo(path: string, mode: number): number;
  fcntl(fd: number, cmd: number, ...args: unknown[]): number;
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): number;
  umount2(target: string, flags: number): number;
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
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as Libc['mount'],
    umount2: lib.func('int umount2(const char *target, int flags)') as Libc['umount2'],
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

export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_SHARED = 1 << 20;
export const MNT_DETACH = 2;

/** mount(2), synchronously; throws the errno as a Node error naming target. */
export function mountSync(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  const c = load();
  if (c.mount(source, target, fstype, flags, data) !== 0) throw errnoError('mount', target, c.errno());
}

/** umount2(2), synchronously. */
export function umountSync(target: string, flags = 0): void {
  const c = load();
  if (c.umount2(target, flags) !== 0) throw errnoError('umount2', target, c.errno());
}
