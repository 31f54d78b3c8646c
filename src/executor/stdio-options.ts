// How a plugin's stdio copy loops are set up from its settings and the
// executor's hooks, and what they say in the log when its log files fail.
import type { Logger } from '../containerd/index.js';
import type { ErrnoClass, FdHooks } from './log-file.js';
import type { PluginSettings } from './settings.js';
import type { StdioOptions, StreamName } from './stdio.js';

export interface StdioHooks {
  onBytes?: ((stream: StreamName, bytes: number) => void) | undefined;
  onDropped?: ((stream: StreamName, bytes: number) => void) | undefined;
  onLogWriteError?: ((errno: ErrnoClass) => void) | undefined;
  fdHooks?: FdHooks | undefined;
}

export function stdioOptions(id: string, settings: PluginSettings, hooks: StdioHooks, log: Logger): StdioOptions {
  const { mode } = settings.log;
  const o: StdioOptions = { rotation: settings.log, mode, bufferSize: settings.log.bufferSize };
  if (hooks.onBytes) o.onBytes = hooks.onBytes;
  if (hooks.onDropped) o.onDropped = hooks.onDropped;
  if (hooks.fdHooks) o.fdHooks = hooks.fdHooks;
  // Every attempt is counted; the log gets one line when an episode
  // starts and one when it ends, however many retries lie between.
  o.onWriteError = (stream, { error: err, errno, action, first, unwritten }) => {
    hooks.onLogWriteError?.(errno);
    const fields = { plugin: id, stream, errno, err };
    if (action === 'give-up') {
      log.error({ ...fields, dropped: unwritten }, "log file failed; the stream's output is read and dropped from now on (plugind_stdio_dropped_bytes_total)");
    } else if (first && action === 'recreate-dir') {
      log.warn(fields, 'log dir was removed; making it again, output goes on in a new file');
    } else if (first) {
      const meanwhile = mode === 'blocking' ? 'the plugin blocks in write() until there is room' : 'output beyond the buffer is dropped until there is room';
      log.warn(fields, `log writes failing; retrying with backoff, ${meanwhile}`);
    }
  };
  o.onWriteRecovered = (stream, { code, ms, attempts }) => log.info({ plugin: id, stream, errno: code, ms, attempts }, `log writes work again after ${ms} ms`);
  return o;
}
