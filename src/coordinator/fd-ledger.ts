// Which fds a worker thread's log files hold, in a SharedArrayBuffer the
// main thread can read after the worker died, to close them for it.
// (Worker threads run with trackUnmanagedFds off: FIFO fds are closed by
// libuv through their sockets, and Node's own tracking would close them a
// second time, hitting whatever reused the number.)
import { closeSync } from 'node:fs';
import type { FdHooks } from '../executor/index.js';

export const FD_LEDGER_BYTES = 1 << 13; // fds 0..65535

export class FdLedger implements FdHooks {
  readonly #bits: Int32Array;

  constructor(buffer: SharedArrayBuffer) {
    this.#bits = new Int32Array(buffer);
  }

  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(FD_LEDGER_BYTES);
  }

  opened(fd: number): void {
    if (fd >>> 5 < this.#bits.length) Atomics.or(this.#bits, fd >>> 5, 1 << (fd & 31));
  }

  // Cleared before the close: a crash in between leaks the fd rather than
  // letting someone close a number that was reused.
  closing(fd: number): void {
    if (fd >>> 5 < this.#bits.length) Atomics.and(this.#bits, fd >>> 5, ~(1 << (fd & 31)));
  }

  held(): number[] {
    const fds: number[] = [];
    for (let w = 0; w < this.#bits.length; w++) {
      const word = Atomics.load(this.#bits, w);
      if (word === 0) continue;
      for (let b = 0; b < 32; b++) if (word & (1 << b)) fds.push(w * 32 + b);
    }
    return fds;
  }

  /** Closes every fd still recorded (call only once the worker is gone). */
  closeAll(): number {
    const fds = this.held();
    for (const fd of fds) {
      this.closing(fd);
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    return fds.length;
  }
}
