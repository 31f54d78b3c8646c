// A small tmpfs of the test's own, for a disk that fills up: mounted on a
// fresh temp dir, resized in place, unmounted by path (lazily if something
// still holds it), and unmounted at exit if a test did not get that far.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  resize(mb: number): void;
  unmount(): void;
}

const mounted = new Set<Tmpfs>();
process.once('exit', () => {
  for (const t of mounted) t.unmount();
});
// The test runner ends a file that ran out of time with SIGTERM; exiting
// runs the exit hooks (this file's, and the harness's that stop plugind and
// containerd) instead of dying with a tmpfs mounted.
process.once('SIGTERM', () => process.exit(143));

export function mountTmpfs(mb: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'pd-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir]);
  const t: Tmpfs = {
    dir,
    resize(size) {
      execFileSync('mount', ['-o', `remount,size=${size}m`, dir]);
    },
    unmount() {
      if (!mounted.delete(t)) return;
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      }
      rmdirSync(dir);
    },
  };
  mounted.add(t);
  return t;
}

/** Fills the filesystem with a file at path, to the last byte. */
export function fill(path: string): void {
  const fd = openSync(path, 'w');
  const zeros = Buffer.alloc(1 << 20);
  try {
    for (;;) writeSync(fd, zeros);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}
