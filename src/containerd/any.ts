// google.protobuf.Any packing as containerd expects it: OCI runtime-spec
// types as JSON under their well-known URLs, proto messages under their bare
// full name.
import { messageCodec } from './wire.js';

export interface Any {
  typeUrl: string;
  value: Uint8Array;
}

// The URLs containerd's Go client registers the runtime-spec types under
// (typeurl.Register in client.go): the shim decodes these as JSON.
const OCI_TYPE_URL_PREFIX = 'types.containerd.io/opencontainers/runtime-spec/1/';
export const OCI_SPEC_TYPE_URL = `${OCI_TYPE_URL_PREFIX}Spec`;
/** An exec'd process: the spec's `process` object. */
export const OCI_PROCESS_TYPE_URL = `${OCI_TYPE_URL_PREFIX}Process`;
/** New limits for a running task: the spec's `linux.resources` object. */
export const OCI_LINUX_RESOURCES_TYPE_URL = `${OCI_TYPE_URL_PREFIX}LinuxResources`;
export const RUNC_OPTIONS_TYPE = 'containerd.runc.v1.Options';

function packJson(typeUrl: string, value: object): Any {
  return { typeUrl, value: Buffer.from(JSON.stringify(value)) };
}

export function packSpec(spec: object): Any {
  return packJson(OCI_SPEC_TYPE_URL, spec);
}

/** A runtime-spec Process (args, env, cwd, user, …) for Tasks.Exec. */
export function packProcessSpec(process: object): Any {
  return packJson(OCI_PROCESS_TYPE_URL, process);
}

/** A runtime-spec LinuxResources (memory, cpu, pids, …) for Tasks.Update. */
export function packLinuxResources(resources: object): Any {
  return packJson(OCI_LINUX_RESOURCES_TYPE_URL, resources);
}

export function unpackSpec(any: Any): unknown {
  if (any.typeUrl !== OCI_SPEC_TYPE_URL) throw new TypeError(`not an OCI spec: ${any.typeUrl}`);
  return JSON.parse(Buffer.from(any.value).toString('utf8'));
}

/** Options of the io.containerd.runc.v2 shim (containerd.runc.v1.Options). */
export interface RuncOptions {
  binaryName?: string;
  root?: string;
  systemdCgroup?: boolean;
}

export function packRuncOptions(options: RuncOptions): Any {
  return { typeUrl: RUNC_OPTIONS_TYPE, value: messageCodec(RUNC_OPTIONS_TYPE).encode(options) };
}

export function unpackRuncOptions(any: Any): Required<RuncOptions> {
  if (typeName(any.typeUrl) !== RUNC_OPTIONS_TYPE) throw new TypeError(`not runc options: ${any.typeUrl}`);
  return messageCodec(RUNC_OPTIONS_TYPE).decode(any.value) as unknown as Required<RuncOptions>;
}

/** The message name of a type URL: whatever follows its last '/'. */
export function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}
