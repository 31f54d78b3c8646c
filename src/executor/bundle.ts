// Docker v2 plugins: the part of a plugin's config.json plugind reads, how it
// is checked, the OCI spec moby's InitSpec (plugin/v2/plugin_linux.go) makes
// of it, and the host privileges it asks for. A bundle is a dir with
// config.json and rootfs/, as `docker plugin create` takes it; a pulled
// image gives the same config and a rootfs as containerd mounts.
import { statSync, readdirSync, type BigIntStats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Mount } from '../containerd/index.js';
import { invalidArgument } from './errors.js';
import { DEFAULT_CAPABILITIES, defaultSpec, mergeEnv, type OciSpec } from './spec.js';

/** Where a plugin finds its runtime dir and makes its socket (moby's defaultPluginRuntimeDestination). */
export const PLUGIN_RUNTIME_DESTINATION = '/run/docker/plugins';

/** A config.json larger than this is no plugin config. */
export const MAX_CONFIG_BYTES = 1 << 20;

/**
 * The longest socket name: a long runtime dir is dialled through
 * `/proc/self/fd/N/<name>` (see ready.ts), and unix socket paths stop at
 * 107 bytes.
 */
export const MAX_SOCKET_NAME = 80;

/** What `Network.Type` may say; anything else is refused. */
export const NETWORK_TYPES = ['host', 'bridge', 'none', 'null'] as const;

export interface PluginEnv {
  Name: string;
  Description: string;
  /** The default; null: none (the variable is unset unless --env gives it). */
  Value: string | null;
}

export interface PluginMount {
  Name: string;
  Description: string;
  Source: string | null;
  Destination: string;
  Type: string;
  Options: string[];
}

export interface PluginDevice {
  Name: string;
  Description: string;
  Path: string | null;
}

/** The config.json fields plugind uses, spelt as Docker's api/types/plugin.go spells them. */
export interface PluginConfig {
  Description: string;
  Documentation: string;
  Entrypoint: string[];
  WorkDir: string;
  Env: PluginEnv[];
  Args: { Name: string; Description: string; Value: string[] };
  Interface: { Socket: string; Types: string[] };
  Mounts: PluginMount[];
  Network: { Type: string };
  PidHost: boolean;
  IpcHost: boolean;
  Linux: { Capabilities: string[]; AllowAllDevices: boolean; Devices: PluginDevice[] };
  /** In-container path whose mounts propagate to the host; '' for none. */
  PropagatedMount: string;
  /** Unset fields: root. */
  User: { UID?: number; GID?: number };
}

/** One thing a plugin asks of the host, as moby's PluginPrivilege carries it. */
export interface PluginPrivilege {
  name: string;
  description: string;
  value: string[];
}

/**
 * Reads one JSON object the way Go's encoding/json fills a struct: keys
 * match case-insensitively. Errors name the field as the file spells it,
 * with its path (`Linux.Devices[0].Path`).
 */
class Fields {
  readonly #obj: Record<string, unknown>;
  readonly #path: string;
  readonly #bad: (path: string, why: string) => Error;

  constructor(obj: Record<string, unknown>, path: string, bad: (path: string, why: string) => Error) {
    this.#obj = obj;
    this.#path = path;
    this.#bad = bad;
  }

  #find(name: string): [string, unknown] {
    if (name in this.#obj) return [name, this.#obj[name]];
    const lower = name.toLowerCase();
    for (const [k, v] of Object.entries(this.#obj)) if (k.toLowerCase() === lower) return [k, v];
    return [name, undefined];
  }

  path(name: string): string {
    return this.#path ? `${this.#path}.${this.#find(name)[0]}` : this.#find(name)[0];
  }

  fail(name: string, why: string): Error {
    return this.#bad(this.path(name), why);
  }

  /** undefined and null both read as absent, as in Go. */
  raw(name: string): unknown {
    const v = this.#find(name)[1];
    return v === null ? undefined : v;
  }

  string(name: string, def = ''): string {
    const v = this.raw(name);
    if (v === undefined) return def;
    if (typeof v !== 'string') throw this.fail(name, `want a string, not ${JSON.stringify(v)}`);
    return v;
  }

  /** A string that may be null (Docker's *string). */
  nullableString(name: string): string | null {
    const v = this.raw(name);
    return v === undefined ? null : this.string(name);
  }

  bool(name: string): boolean {
    const v = this.raw(name);
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw this.fail(name, `want true or false, not ${JSON.stringify(v)}`);
    return v;
  }

  strings(name: string): string[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw this.fail(name, 'want a list of strings');
    return v as string[];
  }

  object(name: string): Fields {
    const v = this.raw(name);
    if (v === undefined) return new Fields({}, this.path(name), this.#bad);
    if (typeof v !== 'object' || Array.isArray(v)) throw this.fail(name, 'want an object');
    return new Fields(v as Record<string, unknown>, this.path(name), this.#bad);
  }

  objects(name: string): Fields[] {
    const v = this.raw(name);
    if (v === undefined) return [];
    if (!Array.isArray(v)) throw this.fail(name, 'want a list of objects');
    return v.map((item, i) => {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) throw this.#bad(`${this.path(name)}[${i}]`, 'want an object');
      return new Fields(item as Record<string, unknown>, `${this.path(name)}[${i}]`, this.#bad);
    });
  }

  uint32(name: string): number | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw this.fail(name, `want a whole number from 0 to 4294967295, not ${JSON.stringify(v)}`);
    return v;
  }
}

/**
 * Parses and checks a plugin's config.json. `source` names the file in
 * errors (default `config.json`; a bundle passes its path, an image its
 * reference): `<source>: Network.Type "x": want host, bridge, none or null`.
 * What it refuses would otherwise fail late or do something else than asked.
 */
export function parsePluginConfig(json: string | Buffer, source = 'config.json'): PluginConfig {
  const bad = (path: string, why: string): Error => invalidArgument(`${source}: ${path}: ${why}`);
  const text = typeof json === 'string' ? json : json.toString('utf8');
  if (Buffer.byteLength(text) > MAX_CONFIG_BYTES) throw invalidArgument(`${source}: larger than ${MAX_CONFIG_BYTES} bytes`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw invalidArgument(`${source}: not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalidArgument(`${source}: not a JSON object`);
  const top = new Fields(parsed as Record<string, unknown>, '', bad);

  const entrypoint = top.strings('Entrypoint');
  if (entrypoint.length === 0 || entrypoint[0] === '') throw top.fail('Entrypoint', 'missing: a plugin needs a command to run');

  const iface = top.object('Interface');
  const socket = iface.string('Socket');
  if (socket === '') throw iface.fail('Socket', 'missing: the name of the socket the plugin serves on');
  if (socket.includes('/') || socket === '.' || socket === '..' || socket.includes('\0')) {
    throw iface.fail('Socket', `${JSON.stringify(socket)}: want a file name (it is made in ${PLUGIN_RUNTIME_DESTINATION}), not a path`);
  }
  if (Buffer.byteLength(socket) > MAX_SOCKET_NAME) throw iface.fail('Socket', `${JSON.stringify(socket)} is longer than ${MAX_SOCKET_NAME} bytes`);

  const network = top.object('Network');
  const netType = network.string('Type');
  if (netType !== '' && !(NETWORK_TYPES as readonly string[]).includes(netType)) {
    throw network.fail('Type', `${JSON.stringify(netType)}: want host, bridge, none or null`);
  }

  const absolute = (f: Fields, name: string, v: string): string => {
    if (!v.startsWith('/')) throw f.fail(name, `${JSON.stringify(v)}: want an absolute path`);
    return v;
  };

  const mounts = top.objects('Mounts').map((m): PluginMount => {
    const source = m.nullableString('Source');
    // moby takes the source from `docker plugin set`; plugind has no such step.
    if (source === null || source === '') throw m.fail('Source', 'not set: plugind needs every mount source in the config (it has no `plugin set`)');
    const type = m.string('Type', 'bind');
    if (type === 'bind') absolute(m, 'Source', source);
    return {
      Name: m.string('Name'),
      Description: m.string('Description'),
      Source: source,
      Destination: absolute(m, 'Destination', m.string('Destination')),
      Type: type,
      Options: m.strings('Options'),
    };
  });

  const linux = top.object('Linux');
  const capabilities = linux.strings('Capabilities').map((c, i) => {
    const name = c.toUpperCase().startsWith('CAP_') ? c.toUpperCase() : `CAP_${c.toUpperCase()}`;
    if (!/^CAP_[A-Z_]+$/.test(name)) throw bad(`${linux.path('Capabilities')}[${i}]`, `${JSON.stringify(c)} is not a capability name`);
    return name;
  });
  const devices = linux.objects('Devices').map((d): PluginDevice => {
    const path = d.nullableString('Path');
    if (path === null || path === '') throw d.fail('Path', 'not set: plugind needs the device path in the config');
    return { Name: d.string('Name'), Description: d.string('Description'), Path: absolute(d, 'Path', path) };
  });

  const env = top.objects('Env').map((e): PluginEnv => {
    const name = e.string('Name');
    if (name === '' || name.includes('=')) throw e.fail('Name', `${JSON.stringify(name)}: want a variable name`);
    return { Name: name, Description: e.string('Description'), Value: e.nullableString('Value') };
  });

  const args = top.object('Args');
  const propagated = top.string('PropagatedMount');
  if (propagated !== '') absolute(top, 'PropagatedMount', propagated);
  const workDir = top.string('WorkDir');
  if (workDir !== '') absolute(top, 'WorkDir', workDir);
  const user = top.object('User');
  const uid = user.uint32('UID');
  const gid = user.uint32('GID');

  return {
    Description: top.string('Description'),
    Documentation: top.string('Documentation'),
    Entrypoint: entrypoint,
    WorkDir: workDir,
    Env: env,
    Args: { Name: args.string('Name'), Description: args.string('Description'), Value: args.strings('Value') },
    Interface: { Socket: socket, Types: iface.strings('Types') },
    Mounts: mounts,
    Network: { Type: netType },
    PidHost: top.bool('PidHost'),
    IpcHost: top.bool('IpcHost'),
    Linux: { Capabilities: capabilities, AllowAllDevices: linux.bool('AllowAllDevices'), Devices: devices },
    PropagatedMount: propagated,
    User: { ...(uid !== undefined ? { UID: uid } : {}), ...(gid !== undefined ? { GID: gid } : {}) },
  };
}

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
    if (size > MAX_CONFIG_BYTES) throw invalidArgument(`${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
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
