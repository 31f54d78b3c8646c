// A plugin's output, streamed from the shard that owns it.
import { MessageChannel } from 'node:worker_threads';
import type { LogChunk, LogsOptions as ExecutorLogsOptions } from '../executor/index.js';
import { LOGS_WINDOW, type LogsControl, type LogsMessage } from './protocol.js';
import { ShardError, type Shard } from './shard.js';

/** What a logs request asks (see pluginLogs). */
export type LogsOptions = Omit<ExecutorLogsOptions, 'signal'>;

/**
 * The plugin's output, streamed from its shard over a MessagePort with a
 * credit window: the worker sends at most LOGS_WINDOW bytes ahead of what
 * the consumer has taken. Breaking out of the loop cancels the stream.
 */
export async function* shardLogs(shard: Shard, id: string, options: LogsOptions = {}): AsyncGenerator<LogChunk> {
  // port2 goes to the worker.
  const { port1, port2 } = new MessageChannel();
  const queue: LogsMessage[] = [];
  let wake: (() => void) | undefined;
  port1.on('message', (m: LogsMessage) => {
    queue.push(m);
    wake?.();
  });
  const done = shard.request({ kind: 'logs', id, options, port: port2 }, [port2]);
  let failed: unknown;
  done.catch((err: unknown) => {
    failed = err;
    wake?.();
  });
  const grant = (bytes: number): void => port1.postMessage({ kind: 'credit', bytes } satisfies LogsControl);
  grant(LOGS_WINDOW);
  try {
    for (;;) {
      const m = queue.shift();
      if (!m) {
        if (failed) throw failed;
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
        continue;
      }
      if (m.kind === 'end') return;
      if (m.kind === 'error') throw new ShardError(m.error.code, m.error.message);
      const data = Buffer.from(m.chunk.data.buffer, m.chunk.data.byteOffset, m.chunk.data.byteLength);
      yield { stream: m.chunk.stream, data };
      grant(data.length);
    }
  } finally {
    port1.postMessage({ kind: 'cancel' } satisfies LogsControl);
    port1.close();
  }
}
