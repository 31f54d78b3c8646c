// The executor layer's public surface.
export { Executor } from './executor.js';
export type { BundleDirRun, BundleRun, CreateOptions, ImageRun, ExecutorOptions, LogsOptions } from './executor.js';
export { parseRecords, type CriRecord } from './cri-log.js';
export { LOG_NAME } from './stdio.js';
export type { BundleStatus, PluginExit, PluginState, PluginStatus } from './plugin.js';
export { initSpec, loadBundle, pluginPrivileges, type Bundle, type InitSpecOptions } from './bundle.js';
export { parsePluginConfig, PLUGIN_RUNTIME_DESTINATION, type PluginConfig, type PluginPrivilege } from './plugin-config.js';
export { dialUnix } from './ready.js';
export { isStopSignal, parseSignal, resolveRuntimeBinary, validateSpec } from './validate.js';
export { MAX_LOG_FILES, MAX_LOG_SIZE, MAX_SPEC_BYTES, MAX_STOP_TIMEOUT_MS } from '../common/limits.js';
export { PluginError, ErrorCode, errorCode } from './errors.js';
export { validateId, MAX_ID_LENGTH } from './ids.js';
export { defaultSpec, hostnameFor, jsonDepth, mergeEnv, withInit, INIT_PATH, MAX_SPEC_DEPTH, type OciSpec, type DefaultSpecOptions } from './spec.js';
export {
  DEFAULT_READY_TIMEOUT_MS,
  LABEL,
  MANAGED_FILTER,
  MAX_READY_TIMEOUT_MS,
  normalizeSettings,
  type BundleSettings,
  type PluginSettings,
  type PluginSettingsInput,
  type LogSettings,
} from './settings.js';
export type { LogChunk } from './log-reader.js';
export type { StreamName, LogMode } from './stdio.js';
export type { StdioVia } from './stdio-sets.js';
export type { ErrnoClass, FdHooks } from './log-file.js';
export { execInPlugin, type ExecRequest, type ExecSink } from './exec.js';
