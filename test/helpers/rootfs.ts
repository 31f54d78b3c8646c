// A busybox root filesystem for test plugins: bin/busybox (the static build
// from Debian's busybox-static) and a link per applet.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

const BUSYBOX = '/bin/busybox';

export function makeBusyboxRootfs(dir: string): string {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} missing; install: apt-get install busybox-static`);
  for (const d of ['bin', 'proc', 'dev', 'sys', 'tmp', 'etc']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(BUSYBOX, join(dir, 'bin/busybox'));
  const applets = execFileSync(BUSYBOX, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  for (const applet of applets) symlinkSync('busybox', join(dir, 'bin', applet));
  return dir;
}
