// Lists of buffers written as one (writev): their length, and where the first
// n bytes end, without copying.

export function byteLength(buffers: Buffer[]): number {
  return buffers.reduce((n, b) => n + b.length, 0);
}

/** Whether the first n bytes of the list end where one of its buffers ends. */
export function atBoundary(buffers: Buffer[], n: number): boolean {
  let sum = 0;
  for (const b of buffers) {
    if (sum === n) return true;
    sum += b.length;
    if (sum > n) return false;
  }
  return true;
}

/** Splits a buffer list after its first n bytes (without copying). */
export function splitBytes(buffers: Buffer[], n: number): [Buffer[], Buffer[]] {
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
