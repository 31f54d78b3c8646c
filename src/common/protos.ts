// Where protos/ is: containerd's client and plugind's API both load from it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Walks up from this module (src/ when run from source, dist/src/ when built). */
export function protosDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'protos');
    if (existsSync(join(candidate, 'containerd'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('plugind: protos/ directory not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}
