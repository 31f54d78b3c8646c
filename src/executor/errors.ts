// Errors the executor raises itself. They share containerd's closed set of
// codes, so every layer above matches on one `code`, whoever raised it.
import { CodedError, ErrorCode, errorCode } from '../common/errors.js';

export { ErrorCode, errorCode };

export class PluginError extends CodedError {
  override readonly name = 'PluginError';
}

export const invalidArgument = (message: string): PluginError => new PluginError(ErrorCode.InvalidArgument, message);
export const notFound = (id: string): PluginError => new PluginError(ErrorCode.NotFound, `plugin ${id}: not found`);

/** Prefixes the plugin id to an error's message unless it already names it. */
export function forPlugin(id: string, err: unknown): PluginError {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof PluginError && message.includes(`plugin ${id}`)) return err;
  return new PluginError(errorCode(err), `plugin ${id}: ${message}`, { cause: err });
}
