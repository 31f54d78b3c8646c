// crun as this host can run it. crun refuses a hybrid cgroup host whose
// cgroup2 hierarchy has controllers ("cgroups in hybrid mode not supported,
// drop all controllers from cgroupv2", libcrun/cgroup.c), which is what a
// host with v1 controllers and, say, hugetlb left on cgroup2 is. There, the
// name `crun` on PATH is a wrapper that runs the real crun in a mount
// namespace of its own with tmpfs over /sys/fs/cgroup/unified: crun then
// sees a v1 host and manages v1 cgroups only. Nothing on the host changes.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export const CRUN = '/usr/bin/crun';

/** Why crun cannot run containers on this host as it is, or undefined when it can. */
export function crunRefusesHost(): string | undefined {
  // Unified hosts have cgroup.controllers at the top; crun handles them.
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return undefined;
  let controllers = '';
  try {
    controllers = readFileSync('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').trim();
  } catch {
    return undefined;
  }
  return controllers ? `hybrid cgroups with controllers on cgroup2 (${controllers})` : undefined;
}

/**
 * Makes `crun` on this process's PATH (its children inherit it) one that
 * runs here: the real one when the host suits it, else the wrapper above,
 * written in dir and put first. Returns its path.
 */
export function crunOnPath(dir: string): string {
  if (!existsSync(CRUN)) throw new Error(`${CRUN} missing; install: apt-get install crun`);
  if (!crunRefusesHost()) return CRUN;
  mkdirSync(dir, { recursive: true });
  const wrapper = join(dir, 'crun');
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec unshare --mount --propagation private sh -c 'mount -t tmpfs none /sys/fs/cgroup/unified && exec ${CRUN} "$@"' crun "$@"\n`,
    { mode: 0o755 },
  );
  process.env.PATH = `${dir}${delimiter}${process.env.PATH ?? ''}`;
  return wrapper;
}
