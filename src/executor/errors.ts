// Errors the executor raises itself. They share containerd's closed set of
// codes, so every layer above matches on one `code`, whoever raised it.
import { CodedError, ErrorCode, errorCode } from '../common/errors.js';

export { ErrorCode, errorCode };

export class PluginError extends CodedError {
  override readonly name = 'PluginError';
  /** The plugin the message names already (`plugin <id>: …`), when it does. */
  readonly plugin: string | undefined;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; plugin?: string }) {
    super(code, message, options);
    this.plugin = options?.plugin;
  }
}

export const invalidArgument = (message: string): PluginError => new PluginError(ErrorCode.InvalidArgument, message);
export const notFound = (id: string): PluginError => new PluginError(ErrorCode.NotFound, `plugin ${id}: not found`, { plugin: id });

/** Prefixes the plugin id to an error's message unless the error is already this plugin's. */
export function forPlugin(id: string, err: unknown): PluginError {
  if (err instanceof PluginError && err.plugin === id) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new PluginError(errorCode(err), `plugin ${id}: ${message}`, { cause: err, plugin: id });
}
