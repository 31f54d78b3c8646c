// A Docker v2 plugin's config (Docker's api/types/plugin.go): the part
// plugind reads and how it is checked, read as Go's encoding/json fills a
// struct. A bundle's config.json and a pulled image's config blob are the
// same document.
import { MAX_PLUGIN_CONFIG_BYTES } from '../common/limits.js';
import { invalidArgument } from './errors.js';

/** Where a plugin finds its runtime dir and makes its socket (moby's defaultPluginRuntimeDestination). */
export const PLUGIN_RUNTIME_DESTINATION = '/run/docker/plugins';

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
  if (Buffer.byteLength(text) > MAX_PLUGIN_CONFIG_BYTES) throw invalidArgument(`${source}: larger than ${MAX_PLUGIN_CONFIG_BYTES} bytes`);
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
