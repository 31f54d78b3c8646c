// What a Run request asks for, checked on the main thread before anything
// crosses to a shard: a plugin from a spec (given, or made from --rootfs), a
// Docker plugin from its bundle dir, or one from a pulled image. The
// request's fields are the `run` flags, and errors name them as flags.
import { existsSync } from 'node:fs';
import { invalidInput as invalid } from '../common/errors.js';
import { healthSettings, type HealthInput } from '../common/health.js';
import { hasResources, pickResources, resourcesProblem, type Resources } from '../common/resources.js';
import {
  MAX_READY_TIMEOUT_MS,
  MAX_SPEC_BYTES,
  MAX_SPEC_DEPTH,
  defaultSpec,
  jsonDepth,
  mergeEnv,
  withInit,
  type BundleDirRun,
  type ImageRun,
  type OciSpec,
  type PluginSettingsInput,
} from '../executor/index.js';
import { DEFAULT_INIT_PATH } from './wire.js';
import { envProblem } from '../common/limits.js';

export interface RunRequest {
  id: string;
  rootfs: string;
  args: string[];
  env: string[];
  specJson: string;
  autoRemove: boolean;
  restart: string;
  log: { mode: string; maxSize: number; maxFiles: number; bufferSize: number } | null;
  replace: boolean;
  init?: boolean;
  runtimeBinary: string;
  bundle: string;
  image: string;
  readyTimeoutSeconds?: number;
  resources: Resources | null;
  healthCheck: WireHealthCheck | null;
}

/** run's --health-* flags (seconds) and --no-healthcheck, as the wire has them. */
export interface WireHealthCheck {
  cmd: string;
  intervalSeconds?: number;
  timeoutSeconds?: number;
  retries?: number;
  startPeriodSeconds?: number;
  disabled: boolean;
}

/** What a run request asks for: a plugin from a spec (given or made from --rootfs), or a Docker plugin from its bundle. */
export type RunPlan =
  | { kind: 'spec'; spec: OciSpec; settings: PluginSettingsInput }
  | { kind: 'bundle'; bundle: BundleDirRun; settings: PluginSettingsInput }
  | { kind: 'image'; image: ImageRun; settings: PluginSettingsInput };

/** What `serve` decides for plugins whose run request does not say. */
export interface RunDefaults {
  /** `serve --init`: plugins get the init unless they ask `--no-init`. */
  init: boolean;
  /** The static init binary on the host. */
  initPath: string;
}

/**
 * The spec (or bundle) and settings a run request asks for, or INVALID_ARGUMENT naming
 * what is wrong. The request's fields are the `run` flags, and messages name
 * them as flags: that is what the user typed.
 */
export function specFromRun(req: RunRequest, namespace: string, defaults: RunDefaults = { init: false, initPath: DEFAULT_INIT_PATH }): RunPlan {
  const what = `plugin ${req.id}`;
  let spec: OciSpec;
  if (req.specJson && req.rootfs) throw invalid(`${what}: give --rootfs or --spec, not both`);
  if (req.bundle && (req.specJson || req.rootfs)) throw invalid(`${what}: give --bundle alone, not with --${req.rootfs ? 'rootfs' : 'spec'}`);
  if (req.image && (req.bundle || req.specJson || req.rootfs)) {
    throw invalid(`${what}: give --image alone, not with --${req.bundle ? 'bundle' : req.rootfs ? 'rootfs' : 'spec'}`);
  }
  const envBad = envProblem(req.env);
  if (envBad) throw invalid(`${what}: ${envBad}`);
  if (req.readyTimeoutSeconds !== undefined && !req.bundle && !req.image) throw invalid(`${what}: --ready-timeout is for Docker plugins (--bundle, --image)`);
  const settings = settingsFromRun(req);
  if (settings.resources) {
    const problem = resourcesProblem(settings.resources);
    if (problem) throw invalid(`${what}: ${problem}`);
  }
  try {
    // A Docker plugin's socket is known once its config is read: checked again then.
    healthSettings(settings.health, Boolean(req.bundle || req.image));
  } catch (err) {
    throw invalid(`${what}: ${(err as Error).message}`);
  }
  if (req.bundle || req.image) {
    if (req.bundle && !req.bundle.startsWith('/')) throw invalid(`${what}: --bundle ${req.bundle}: want an absolute path`);
    // A bundle's entrypoint is its own: an init in front would change what the plugin is.
    if (req.init === true) throw invalid(`${what}: --init is not for Docker plugins (--bundle, --image): the plugin's entrypoint runs as PID 1`);
    const t = req.readyTimeoutSeconds;
    if (t !== undefined && (!Number.isFinite(t) || t <= 0 || t * 1000 > MAX_READY_TIMEOUT_MS)) {
      throw invalid(`${what}: --ready-timeout ${t}: want seconds above 0, at most ${MAX_READY_TIMEOUT_MS / 1000}`);
    }
    const readyTimeout = t !== undefined ? { readyTimeoutMs: t * 1000 } : {};
    if (req.image) return { kind: 'image', image: { image: req.image, args: req.args, env: req.env, ...readyTimeout }, settings };
    return { kind: 'bundle', bundle: { dir: req.bundle, args: req.args, env: req.env, ...readyTimeout }, settings };
  }
  if (req.specJson) {
    const bytes = Buffer.byteLength(req.specJson);
    if (bytes > MAX_SPEC_BYTES) throw invalid(`${what}: --spec is ${bytes} bytes; at most ${MAX_SPEC_BYTES}`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(req.specJson);
    } catch (err) {
      throw invalid(`${what}: --spec is not JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid(`${what}: --spec is not a JSON object`);
    // Before the spec crosses a thread: a structured clone of deep nesting overflows the stack.
    if (jsonDepth(parsed) > MAX_SPEC_DEPTH) throw invalid(`${what}: --spec nests deeper than ${MAX_SPEC_DEPTH} levels`);
    spec = parsed as OciSpec;
    if (typeof spec.process === 'object' && spec.process !== null) {
      if (req.args.length > 0) spec.process.args = req.args;
      if (req.env.length > 0) spec.process.env = mergeEnv(Array.isArray(spec.process.env) ? spec.process.env : [], req.env);
    }
  } else if (req.rootfs) {
    if (!req.rootfs.startsWith('/')) throw invalid(`${what}: --rootfs ${req.rootfs}: want an absolute path`);
    if (req.args.length === 0) throw invalid(`${what}: no command given (plugind run ID --rootfs DIR -- CMD ARG...)`);
    spec = defaultSpec({ rootfs: req.rootfs, args: req.args, env: req.env, namespace, id: req.id });
  } else {
    throw invalid(`${what}: give --rootfs DIR -- CMD, --spec FILE, --bundle DIR or --image REF`);
  }
  if (req.init ?? defaults.init) {
    if (!existsSync(defaults.initPath)) throw invalid(`${what}: --init: ${defaults.initPath} not found (Debian's tini package ships it)`);
    if (Array.isArray(spec.process?.args)) spec = withInit(spec, defaults.initPath);
  }
  return { kind: 'spec', spec, settings };
}

/** The settings every kind of run takes alike. */
function settingsFromRun(req: RunRequest): PluginSettingsInput {
  const settings: PluginSettingsInput = { autoRemove: req.autoRemove };
  if (req.restart) settings.restart = req.restart;
  // Looked up by the shard (see resolveRuntimeBinary): a name on PATH, off this thread.
  if (req.runtimeBinary) settings.runtimeBinary = req.runtimeBinary;
  if (req.log) {
    const log: NonNullable<PluginSettingsInput['log']> = {};
    if (req.log.mode) log.mode = req.log.mode as 'blocking' | 'non-blocking';
    if (req.log.maxSize) log.maxSize = req.log.maxSize;
    if (req.log.maxFiles) log.maxFiles = req.log.maxFiles;
    if (req.log.bufferSize) log.bufferSize = req.log.bufferSize;
    settings.log = log;
  }
  const r = pickResources(req.resources);
  if (hasResources(r)) settings.resources = r;
  const h = req.healthCheck;
  if (h) {
    const health: HealthInput = {};
    if (h.cmd) health.cmd = h.cmd;
    if (h.intervalSeconds !== undefined) health.intervalMs = h.intervalSeconds * 1000;
    if (h.timeoutSeconds !== undefined) health.timeoutMs = h.timeoutSeconds * 1000;
    if (h.retries !== undefined) health.retries = h.retries;
    if (h.startPeriodSeconds !== undefined) health.startPeriodMs = h.startPeriodSeconds * 1000;
    if (h.disabled) health.disabled = true;
    settings.health = health;
  }
  return settings;
}
