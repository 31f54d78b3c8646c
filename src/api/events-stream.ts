// The Events stream: exits as plugind tells them, for some ids or all,
// after a replay of the remembered ones told since a time, up to an end
// time. The listener is registered before the replay is read, so nothing
// told meanwhile is missed, and an exit both remembered and heard live is
// sent once.
import type * as grpc from '@grpc/grpc-js';
import { invalidInput as invalid } from '../common/errors.js';
import type { Coordinator } from '../coordinator/index.js';
import { validateId, type PluginExit } from '../executor/index.js';
import { exitMessage } from './server-messages.js';
import { timestampMs, type Timestamp } from './wire.js';

export interface EventsCall {
  ids: string[];
  since: Timestamp | null;
  until: Timestamp | null;
}

/** Streams exits on call until the client goes, untilMs passes or plugind closes the stream; returns a cleanup. */
export function streamEvents(co: Coordinator, call: grpc.ServerWritableStream<EventsCall, unknown>): () => void {
  const { ids } = call.request;
  for (const id of ids) validateId(id);
  const sinceMs = timestampMs(call.request.since);
  const untilMs = timestampMs(call.request.until);
  if (sinceMs !== undefined && untilMs !== undefined && untilMs < sinceMs) throw invalid('--until is before --since');
  const wanted = ids.length === 0 ? (): boolean => true : (e: PluginExit): boolean => ids.includes(e.id);
  const key = (e: PluginExit): string => `${e.id}:${e.pid}`;
  const sent = new Set<string>();
  let replaying = true;
  const heard: PluginExit[] = [];
  // Keys are kept only until the replay and what was heard meanwhile are
  // sent: after that every exit comes once, live (a stream left open for
  // days holds no set of every exit it sent).
  const send = (e: PluginExit): void => {
    if (!wanted(e) || call.writableEnded) return;
    if (replaying || heard.length > 0) {
      if (sent.has(key(e))) return;
      sent.add(key(e));
    }
    call.write(exitMessage(e));
  };
  const onExit = (e: PluginExit): void => {
    if (replaying) heard.push(e);
    else send(e);
  };
  co.on('exit', onExit);
  let timer: NodeJS.Timeout | undefined;
  const done = (): void => {
    co.off('exit', onExit);
    clearTimeout(timer);
  };
  if (sinceMs !== undefined) for (const t of co.recentExits.since(sinceMs, untilMs)) send(t.exit);
  replaying = false;
  const now = Date.now();
  if (untilMs !== undefined && untilMs <= now) {
    done();
    call.end();
    return done;
  }
  for (const e of heard) send(e);
  heard.length = 0;
  sent.clear();
  // Listening from here on: the client's ready() resolves at this.
  call.write({ subscribed: true });
  if (untilMs !== undefined) {
    timer = setTimeout(() => {
      done();
      if (!call.writableEnded) call.end();
    }, untilMs - now);
  }
  return done;
}
