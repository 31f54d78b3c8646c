// Docker v2 plugins: a bundle read, the OCI spec moby's InitSpec
// (plugin/v2/plugin_linux.go) makes of a plugin's config (plugin-config.ts),
// and the host privileges it asks for. A bundle is a dir with config.json
// and rootfs/, as `docker plugin create` takes it; a pulled image gives the
// same config and a rootfs as containerd mounts.
import { statSync, readdirSync, type BigIntStats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mount } from '../containerd/index.js';
import { MAX_PLUGIN_CONFIG_BYTES } from '../common/limits.js';
import { invalidArgument } from './errors.js';
import { PLUGIN_RUNTIME_DESTINATION, parsePluginConfig, type PluginConfig, type PluginPrivilege } from './plugin-config.js';
import { DEFAULT_CAPABILITIES, defaultSpec, mergeEnv, type OciSpec } from './spec.js';


/** A bundle dir read and checked: its config, and its rootfs (a directory). */
export interface Bundle {
  dir: string;
  config: PluginConfig;
  rootfs: string;
}

/** Reads DIR/config.json and checks DIR/rootfs; INVALID_ARGUMENT naming `--bundle DIR` and the file otherwise. */
export async function loadBundle(dir: string): Promise<Bundle> {
  const flag = `--bundle ${dir}`;
  if (!dir.startsWith('/')) throw invalidArgument(`${flag}: want an absolute path`);
  const file = join(dir, 'config.json');
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    throw invalidArgument(`${flag}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : (err as Error).message}`);
  }
  if (!st.isDirectory()) throw invalidArgument(`${flag}: not a directory (want one holding config.json and rootfs/)`);
  let json: Buffer;
  try {
    const size = (await stat(file)).size;
    if (size > MAX_PLUGIN_CONFIG_BYTES) throw invalidArgument(`${file}: larger than ${MAX_PLUGIN_CONFIG_BYTES} bytes`);
    json = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw invalidArgument(`${flag}: no config.json in it (a Docker plugin bundle is config.json and rootfs/)`);
    if ((err as { code?: unknown }).code === 'InvalidArgument') throw err;
    throw invalidArgument(`${file}: ${(err as Error).message}`);
  }
  const config = parsePluginConfig(json, file);
  const rootfs = join(dir, 'rootfs');
  let rst;
  try {
    rst = await stat(rootfs);
  } catch {
    throw invalidArgument(`${flag}: no rootfs/ in it`);
  }
  if (!rst.isDirectory()) throw invalidArgument(`${flag}: ${rootfs} is not a directory`);
  return { dir, config, rootfs };
}

export interface InitSpecOptions {
  /** The plugin's root filesystem on the host (a bundle's rootfs/). */
  rootfs?: string;
  /**
   * Or: the rootfs as containerd mounts (a pulled image's snapshot), handed
   * to Tasks.Create; the spec's root is then `rootfs`, as containerd's
   * clients set it.
   */
  rootfsMounts?: Mount[];
  /** Host dir bind-mounted at /run/docker/plugins (see paths.ts). */
  runtimeDir: string;
  /** Host dir behind config.PropagatedMount; unused when the config has none. */
  propagatedRoot: string;
  /** After `--`: replace config.Args.Value, as moby's `plugin set` args do. */
  args?: string[];
  /** `K=V` from --env: override the config's defaults. */
  env?: string[];
  id: string;
  namespace: string;
}

/**
 * The OCI spec moby's InitSpec makes of a config: its default spec (default
 * capabilities, own mount, uts, pid, ipc and network namespaces), a writable
 * rootfs, the runtime dir at /run/docker/plugins (rbind, rshared), the host
 * network only for Network.Type host (bridge, none and null keep a network
 * namespace of their own with loopback alone: plugind wires no bridge, nor
 * does moby's plugin spec), /etc/hosts and /etc/resolv.conf read-only when
 * a network type is set, pid/ipc host, added capabilities, devices looked up
 * on the host, the config's mounts, entrypoint and args, workdir, env and
 * user. Where we differ from moby: a cgroup under the containerd namespace
 * (our default spec's), and the plugin id as hostname.
 */
export function initSpec(config: PluginConfig, o: InitSpecOptions): OciSpec {
  if (!o.rootfs && !o.rootfsMounts) throw new TypeError('initSpec: give rootfs or rootfsMounts');
  const defaults = config.Env.filter((e) => e.Value !== null).map((e) => `${e.Name}=${e.Value as string}`);
  const args = [...config.Entrypoint, ...(o.args && o.args.length > 0 ? o.args : config.Args.Value)];
  const spec = defaultSpec({
    rootfs: o.rootfs ?? 'rootfs',
    args,
    env: mergeEnv(defaults, o.env ?? []),
    cwd: config.WorkDir || '/',
    readonlyRootfs: false,
    privateNetwork: config.Network.Type !== 'host',
    namespace: o.namespace,
    id: o.id,
  });
  const linux = spec.linux as NonNullable<OciSpec['linux']>;
  // moby's default spec sets neither: a plugin gets the limits and privileges its shim has.
  delete spec.process.noNewPrivileges;
  delete spec.process.rlimits;

  const removeNamespace = (type: string): void => {
    linux.namespaces = (linux.namespaces ?? []).filter((n) => n.type !== type);
  };
  if (config.PidHost) removeNamespace('pid');
  if (config.IpcHost) removeNamespace('ipc');

  const mounts: NonNullable<OciSpec['mounts']> = [];
  if (config.PropagatedMount) {
    mounts.push({ destination: config.PropagatedMount, type: 'bind', source: o.propagatedRoot, options: ['rbind', 'rw', 'rshared'] });
    linux.rootfsPropagation = 'rshared';
  }
  for (const m of config.Mounts) mounts.push({ destination: m.Destination, type: m.Type, source: m.Source as string, options: [...m.Options] });
  mounts.push({ destination: PLUGIN_RUNTIME_DESTINATION, type: 'bind', source: o.runtimeDir, options: ['rbind', 'rshared'] });
  if (config.Network.Type !== '') {
    for (const f of ['/etc/hosts', '/etc/resolv.conf']) mounts.push({ destination: f, type: 'bind', source: f, options: ['rbind', 'ro'] });
  }
  // A config mount over one of the defaults (/dev/shm, say) replaces it.
  const taken = new Set(config.Mounts.map((m) => m.Destination));
  spec.mounts = [...(spec.mounts ?? []).filter((m) => !taken.has(m.destination)), ...mounts];

  const resources = (linux.resources ?? {}) as { devices?: Array<Record<string, unknown>> };
  linux.resources = resources;
  if (config.Linux.AllowAllDevices) resources.devices = [{ allow: true, access: 'rwm' }];
  const devices: LinuxDevice[] = [];
  config.Linux.Devices.forEach((d, i) => {
    for (const dev of devicesFromPath(d.Path as string, `Linux.Devices[${i}].Path`)) {
      devices.push(dev);
      (resources.devices ??= []).push({ allow: true, type: dev.type, major: dev.major, minor: dev.minor, access: 'rwm' });
    }
  });
  if (devices.length > 0) linux.devices = devices;

  const caps = spec.process.capabilities;
  if (caps) {
    for (const set of ['bounding', 'effective', 'permitted'] as const) caps[set] = [...new Set([...caps[set], ...config.Linux.Capabilities])];
  }
  if (config.User.UID !== undefined || config.User.GID !== undefined) spec.process.user = { uid: config.User.UID ?? 0, gid: config.User.GID ?? 0 };
  return spec;
}

interface LinuxDevice {
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

function deviceOf(path: string, st: BigIntStats): LinuxDevice | undefined {
  const fmt = Number(st.mode) & S_IFMT;
  if (fmt !== S_IFCHR && fmt !== S_IFBLK) return undefined;
  const rdev = st.rdev;
  // glibc's gnu_dev_major / gnu_dev_minor.
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { path, type: fmt === S_IFCHR ? 'c' : 'b', major, minor, fileMode: Number(st.mode) & 0o7777, uid: Number(st.uid), gid: Number(st.gid) };
}

/**
 * A host device, or every device under a host dir (as moby's
 * oci.DevicesFromPath walks /dev/dri, say), with the type and numbers the
 * host has. Synchronous: a few stats, while the spec is built.
 */
function devicesFromPath(path: string, field: string): LinuxDevice[] {
  let st: BigIntStats;
  try {
    st = statSync(path, { bigint: true });
  } catch (err) {
    throw invalidArgument(`config.json: ${field}: ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such device on this host' : (err as Error).message}`);
  }
  const one = deviceOf(path, st);
  if (one) return [one];
  if (!st.isDirectory()) throw invalidArgument(`config.json: ${field}: ${path} is not a device`);
  const found: LinuxDevice[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isCharacterDevice() || e.isBlockDevice()) {
        const d = deviceOf(p, statSync(p, { bigint: true }));
        if (d) found.push(d);
      }
    }
  };
  walk(path);
  return found;
}

/**
 * What a plugin asks of the host beyond a plain container, the list moby
 * shows before `docker plugin install`: plugind runs it without asking
 * (its API is root-equivalent), and shows the list in `inspect`.
 */
export function pluginPrivileges(config: PluginConfig): PluginPrivilege[] {
  const out: PluginPrivilege[] = [];
  // A namespace of its own (bridge, none, null) is no privilege.
  if (config.Network.Type === 'host') out.push({ name: 'network', description: "the host's network stack", value: ['host'] });
  if (config.IpcHost) out.push({ name: 'host ipc namespace', description: "the host's IPC namespace", value: ['true'] });
  if (config.PidHost) out.push({ name: 'host pid namespace', description: "the host's process table", value: ['true'] });
  for (const m of config.Mounts) out.push({ name: 'mount', description: 'a host path mounted into the plugin', value: [m.Source as string] });
  for (const d of config.Linux.Devices) out.push({ name: 'device', description: 'a host device the plugin may use', value: [d.Path as string] });
  if (config.Linux.AllowAllDevices) out.push({ name: 'allow-all-devices', description: 'read, write and mknod on every device', value: ['true'] });
  const added = config.Linux.Capabilities.filter((c) => !DEFAULT_CAPABILITIES.includes(c));
  if (added.length > 0) out.push({ name: 'capabilities', description: 'capabilities beyond the default set', value: added });
  if (config.PropagatedMount) out.push({ name: 'propagated mount', description: 'mounts the plugin makes under it appear on the host', value: [config.PropagatedMount] });
  return out;
}
