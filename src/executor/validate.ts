// Input checks done before anything reaches containerd: what it would reject
// late (or not at all) is refused here with a message naming the field.
import { constants as osConstants } from 'node:os';
import { constants as fsConstants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import { MAX_SPEC_BYTES, MAX_STOP_TIMEOUT_MS } from '../common/limits.js';
import { packSpec, type Any } from '../containerd/index.js';
import { invalidArgument } from './errors.js';
import { MAX_SPEC_DEPTH, jsonDepth, type OciSpec } from './spec.js';

/** Accepts a signal number or name (`TERM`, `SIGTERM`, `sigterm`). */
export function parseSignal(signal: number | string): number {
  if (typeof signal === 'number') {
    if (Number.isInteger(signal) && signal >= 1 && signal <= 64) return signal;
    throw invalidArgument(`signal ${signal}: want 1 to 64 or a name such as TERM`);
  }
  if (/^\d+$/.test(signal)) return parseSignal(Number(signal));
  const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  const n = (osConstants.signals as Record<string, number>)[name];
  if (n === undefined) throw invalidArgument(`unknown signal ${JSON.stringify(signal)}`);
  return n;
}

/** The signals a user sends to end a plugin (docker's stop and kill defaults, and ^C's). */
export function isStopSignal(n: number): boolean {
  const { SIGKILL, SIGTERM, SIGINT } = osConstants.signals;
  return n === SIGKILL || n === SIGTERM || n === SIGINT;
}

/**
 * Checks what containerd would reject late, or not at all, before anything
 * is created; returns the spec packed for containerd (serialized once).
 */
export async function validateSpec(spec: unknown, options: { rootfsMounts?: boolean } = {}): Promise<Any> {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw invalidArgument('spec is not a JSON object');
  const s = spec as Partial<OciSpec>;
  // Checked before anything serializes it: deep nesting overflows the stack there.
  if (jsonDepth(spec) > MAX_SPEC_DEPTH) throw invalidArgument(`spec nests deeper than ${MAX_SPEC_DEPTH} levels`);
  const packed = packSpec(spec);
  if (packed.value.length > MAX_SPEC_BYTES) throw invalidArgument(`spec is ${packed.value.length} bytes; at most ${MAX_SPEC_BYTES}`);
  const args = s.process?.args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
    throw invalidArgument('spec.process.args must be a non-empty list of strings');
  }
  if (args[0] === '') throw invalidArgument('spec.process.args[0] (the command) is empty');
  const env = s.process?.env;
  if (env !== undefined && (!Array.isArray(env) || !env.every((e) => typeof e === 'string' && e.includes('=') && !e.startsWith('=')))) {
    throw invalidArgument('spec.process.env must be a list of K=V strings');
  }
  if (s.process?.terminal) throw invalidArgument('spec.process.terminal is not supported: plugins have no terminal');
  if (typeof s.hostname === 'string' && Buffer.byteLength(s.hostname) > 64) throw invalidArgument(`spec.hostname is ${Buffer.byteLength(s.hostname)} bytes; Linux allows 64`);
  const root = s.root?.path;
  // A rootfs given as mounts (a snapshot) is mounted by the shim at the relative root.
  if (options.rootfsMounts) {
    if (typeof root !== 'string' || root === '' || root.startsWith('/')) throw invalidArgument('spec.root.path must be relative when the rootfs is given as mounts');
    return packed;
  }
  if (typeof root !== 'string' || !root.startsWith('/')) throw invalidArgument('spec.root.path must be an absolute path to the plugin rootfs');
  let st;
  try {
    st = await stat(root);
  } catch {
    throw invalidArgument(`rootfs ${root} does not exist`);
  }
  if (!st.isDirectory()) throw invalidArgument(`rootfs ${root} is not a directory`);
  return packed;
}

export function checkStopTimeout(timeoutMs: number): void {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_STOP_TIMEOUT_MS) {
    throw invalidArgument(`stop timeout ${String(timeoutMs)} ms: want 0 to ${MAX_STOP_TIMEOUT_MS}`);
  }
}

/**
 * The absolute path of the OCI runtime the runc shim is to run (its
 * BinaryName), given as a name looked up on PATH or as an absolute path;
 * INVALID_ARGUMENT naming --runtime-binary otherwise. The shim would look a
 * bare name up on its own PATH, which need not be ours, and fail only at
 * task create: it gets the path found here.
 */
export async function resolveRuntimeBinary(binary: string): Promise<string> {
  const flag = `--runtime-binary ${JSON.stringify(binary)}`;
  if (typeof binary !== 'string' || binary === '' || binary.includes('\0')) throw invalidArgument(`${flag}: want a name on PATH or an absolute path`);
  if (binary.includes('/')) {
    if (!isAbsolute(binary)) throw invalidArgument(`${flag}: want a name on PATH or an absolute path`);
    const why = await notExecutable(binary);
    if (why) throw invalidArgument(`${flag}: ${why}`);
    return binary;
  }
  // Relative PATH entries are skipped: what they find depends on plugind's cwd.
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => isAbsolute(d));
  for (const dir of dirs) {
    const path = join(dir, binary);
    if ((await notExecutable(path)) === undefined) return path;
  }
  throw invalidArgument(`${flag}: not found on PATH (${dirs.join(delimiter)})`);
}

/** Why path is not an executable file, or undefined when it is one. */
async function notExecutable(path: string): Promise<string | undefined> {
  let st;
  try {
    st = await stat(path);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
  }
  if (!st.isFile()) return 'not a file';
  try {
    await access(path, fsConstants.X_OK);
  } catch {
    return 'not executable';
  }
  return undefined;
}
