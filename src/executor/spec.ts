// The OCI runtime spec a plugin gets when the user gives only a rootfs and a
// command: what `runc spec` writes, less the terminal, with the mounts a
// long-lived helper expects and a cgroup under the containerd namespace.
import { linuxResources, type Resources } from '../common/resources.js';

/** The part of the OCI runtime spec plugind reads or writes. */
export interface OciSpec {
  ociVersion: string;
  process: {
    terminal?: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env?: string[];
    cwd: string;
    capabilities?: Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>;
    rlimits?: Array<{ type: string; hard: number; soft: number }>;
    noNewPrivileges?: boolean;
    [key: string]: unknown;
  };
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: Array<{ destination: string; type?: string; source?: string; options?: string[] }>;
  linux?: {
    cgroupsPath?: string;
    namespaces?: Array<{ type: string; path?: string }>;
    maskedPaths?: string[];
    readonlyPaths?: string[];
    resources?: Record<string, unknown>;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface DefaultSpecOptions {
  /** Absolute path of the plugin's root filesystem (a directory). */
  rootfs: string;
  args: string[];
  /** `K=V` entries, added after (and overriding) the default PATH. */
  env?: string[];
  /** Default "/". */
  cwd?: string;
  hostname?: string;
  /** Default true: a plugin does not change what it was shipped as. */
  readonlyRootfs?: boolean;
  /** Own network namespace (loopback only). Default false: the host's network. */
  privateNetwork?: boolean;
  /**
   * Default `/<namespace>/<id>` when both are given (what containerd's own
   * client sets); empty leaves placement to runc, as moby's plugin spec does.
   */
  cgroupsPath?: string;
  namespace?: string;
  id?: string;
  /** Host path of a static init (tini) to run as PID 1 in front of args (`run --init`). */
  init?: string;
}

/** Where `run --init` binds the init binary: /dev is the spec's own tmpfs, so nothing is written to the rootfs. */
export const INIT_PATH = '/dev/init';

/** Linux allows 64 bytes of hostname (sethostname fails past that); containerd's ids reach 76. */
const MAX_HOSTNAME = 63;

/** The hostname a plugin gets from its id: the id itself, cut to what Linux takes. */
export function hostnameFor(id: string): string {
  return id.length <= MAX_HOSTNAME ? id : id.slice(0, MAX_HOSTNAME).replace(/[._-]+$/, '');
}

/** Deeper JSON than any OCI spec needs; structured clone and JSON.stringify overflow the stack long before 20,000. */
export const MAX_SPEC_DEPTH = 64;

/** How deep a parsed JSON value nests, counted without recursion; stops counting past limit. */
export function jsonDepth(value: unknown, limit = MAX_SPEC_DEPTH): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) return deepest;
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/**
 * Puts a static init in front of the spec's command, bound read-only at
 * INIT_PATH: SIGTERM then reaches the command (a PID 1 gets no default
 * signal handling) and orphans are reaped, as `docker run --init` does.
 */
export function withInit(spec: OciSpec, init: string): OciSpec {
  const mounts = [...(spec.mounts ?? []), { destination: INIT_PATH, type: 'bind', source: init, options: ['rbind', 'ro', 'nosuid', 'nodev'] }];
  return { ...spec, mounts, process: { ...spec.process, args: [INIT_PATH, '--', ...spec.process.args] } };
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

// containerd's (and Docker's) default capability set.
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Merges `K=V` lists: later keys replace earlier ones, order of first appearance kept. */
export function mergeEnv(...lists: string[][]): string[] {
  const byKey = new Map<string, string>();
  for (const list of lists) {
    for (const kv of list) {
      const eq = kv.indexOf('=');
      byKey.set(eq < 0 ? kv : kv.slice(0, eq), kv);
    }
  }
  return [...byKey.values()];
}

export function defaultSpec(options: DefaultSpecOptions): OciSpec {
  const caps = [...DEFAULT_CAPABILITIES];
  const namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (options.privateNetwork) namespaces.push({ type: 'network' });
  const cgroupsPath =
    options.cgroupsPath ?? (options.namespace && options.id ? `/${options.namespace}/${options.id}` : undefined);
  const linux: NonNullable<OciSpec['linux']> = {
    namespaces,
    resources: { devices: [{ allow: false, access: 'rwm' }] },
    maskedPaths: [
      '/proc/acpi',
      '/proc/asound',
      '/proc/kcore',
      '/proc/keys',
      '/proc/latency_stats',
      '/proc/timer_list',
      '/proc/timer_stats',
      '/proc/sched_debug',
      '/proc/scsi',
      '/sys/firmware',
    ],
    readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
  };
  if (cgroupsPath) linux.cgroupsPath = cgroupsPath;
  const spec: OciSpec = {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: [...options.args],
      env: mergeEnv([DEFAULT_PATH], options.env ?? []),
      cwd: options.cwd ?? '/',
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: options.rootfs, readonly: options.readonlyRootfs ?? true },
    hostname: options.hostname ?? (options.id ? hostnameFor(options.id) : 'plugin'),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux,
  };
  return options.init ? withInit(spec, options.init) : spec;
}

/**
 * The spec with these limits in linux.resources, over what it had: a
 * limit a --spec file sets stays unless a flag sets it too.
 */
export function withResources(spec: OciSpec, r: Resources): OciSpec {
  const had = spec.linux?.resources ?? {};
  const resources: Record<string, unknown> = { ...had };
  for (const [k, v] of Object.entries(linuxResources(r))) {
    const prev = had[k];
    resources[k] = typeof prev === 'object' && prev !== null ? { ...prev, ...(v as object) } : v;
  }
  return { ...spec, linux: { ...spec.linux, resources } };
}
