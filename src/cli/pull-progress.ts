// What `plugind pull` shows while it runs: on a terminal one stderr line,
// rewritten in place, for the blob at hand; elsewhere a plain line per blob
// as it is done, and no download ticks.
import type { PullEvent } from '../api/client.js';

/** 1.4 MB, 512 B: decimal units, as docker prints sizes. */
export function humanSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let n = bytes;
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return i === 0 ? `${n} B` : `${n < 10 ? n.toFixed(1) : Math.round(n)} ${units[i] as string}`;
}

const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12);

export class PullProgressLine {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  #shown = false;

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    this.#tty = out.isTTY === true;
  }

  show(e: PullEvent): void {
    if (e.image) return;
    const what = `${e.kind} ${short(e.digest)}`;
    if (this.#tty) {
      const amount = e.status === 'downloading' ? ` ${humanSize(e.done)} / ${humanSize(e.total)}` : '';
      this.#out.write(`\r\x1b[K${what}: ${e.status}${amount}`);
      this.#shown = true;
    } else if (e.status !== 'downloading' && e.status !== 'unpacking') {
      this.#out.write(`${what}: ${e.status} (${humanSize(e.total)})\n`);
    }
  }

  /** Clears the line before the result or an error is printed. */
  done(): void {
    if (this.#shown) this.#out.write('\r\x1b[K');
    this.#shown = false;
  }
}
