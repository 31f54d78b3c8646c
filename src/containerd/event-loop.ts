// Keeps an event subscription alive: subscribe, confirm it is live, let the
// owner reconcile (containerd keeps no history, so whatever happened while
// we were not subscribed must be found by listing), then deliver events;
// when the stream breaks, resubscribe with backoff.
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerdClient } from './client.js';
import type { ContainerdEvent, EventSubscription } from './events.js';
import { silentLogger, type Logger } from '../common/log.js';

export interface EventLoopOptions {
  client: ContainerdClient;
  filters: string[];
  onEvent: (ev: ContainerdEvent) => void;
  /** After every (re)subscription is live, before its events are delivered. */
  onLive?: (info: { resubscribed: boolean }) => Promise<void> | void;
  /** Resubscribe backoff, doubling from initialMs to maxMs. Default 100 / 5 000 ms. */
  backoff?: { initialMs?: number; maxMs?: number };
  logger?: Logger;
}

export class EventLoop {
  readonly #o: EventLoopOptions;
  readonly #log: Logger;
  #sub: EventSubscription | undefined;
  #closed = false;
  readonly #abort = new AbortController();
  #running: Promise<void> | undefined;

  constructor(options: EventLoopOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
  }

  /** Starts the loop; resolves once the first subscription is live and onLive has run. */
  start(): Promise<void> {
    if (this.#running) throw new Error('event loop already started');
    return new Promise((resolve, reject) => {
      this.#running = this.#run(resolve, reject);
    });
  }

  async #run(firstLive: () => void, firstFailed: (err: Error) => void): Promise<void> {
    const initial = this.#o.backoff?.initialMs ?? 100;
    const max = this.#o.backoff?.maxMs ?? 5000;
    let delay = initial;
    let first = true;
    while (!this.#closed) {
      let sub: EventSubscription | undefined;
      try {
        sub = this.#o.client.events.subscribe({ filters: this.#o.filters });
        this.#sub = sub;
        await sub.ready();
        delay = initial;
        await this.#o.onLive?.({ resubscribed: !first });
        if (first) firstLive();
        first = false;
        for await (const ev of sub) this.#o.onEvent(ev);
      } catch (err) {
        if (this.#closed) break;
        this.#log.warn({ err: err as Error, retryInMs: delay }, 'event stream broken; resubscribing');
        if (first && (err as { code?: string }).code !== 'Unavailable' && (err as { code?: string }).code !== 'DeadlineExceeded') {
          firstFailed(err as Error);
          return;
        }
      } finally {
        sub?.close();
      }
      // The client was closed under us: nothing to resubscribe with.
      if (this.#o.client.closed) break;
      if (this.#closed) break;
      await sleep(delay, undefined, { signal: this.#abort.signal }).catch(() => {});
      delay = Math.min(delay * 2, max);
    }
  }

  /** Ends the subscription and the loop. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#abort.abort();
    this.#sub?.close();
    await this.#running?.catch(() => {});
  }
}
