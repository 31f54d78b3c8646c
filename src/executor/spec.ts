// The OCI runtime spec a plugin gets when the user gives only a rootfs and a
// command: what `runc spec` writes, less the terminal, with the mounts a
// long-lived helper expects and a cgroup under the containerd namespace.

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
  return {
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
    hostname: options.hostname ?? options.id ?? 'plugin',
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
}
