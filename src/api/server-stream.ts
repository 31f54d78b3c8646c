// A server stream of plugind.v1 as an async iterable: what the client's
// logs, events and pull calls return.
import type * as grpc from '@grpc/grpc-js';
import { CodedError, ErrorCode } from '../common/errors.js';

/**
 * A server stream as an async iterable. close() cancels the call and ends a
 * pending iteration quietly: an async generator could not be stopped while
 * it waits for the next message. It ends without error only when the server
 * finished it; plugind going away is an error (see PluginsClient#error).
 *
 * A stream whose server first says it is live (Events) takes a live
 * predicate: that message resolves ready() and is not yielded. ready() is
 * told by the iteration, so it resolves only while the stream is iterated;
 * it rejects if the stream ends or fails first. Without a predicate, ready()
 * resolves when the call is opened.
 */
export class ServerStream<T> implements AsyncIterable<T> {
  readonly #connected: Promise<void>;
  readonly #open: () => grpc.ClientReadableStream<unknown>;
  readonly #map: (m: never) => T;
  readonly #error: (err: unknown) => CodedError;
  readonly #live: ((m: never) => boolean) | undefined;
  readonly #ready: Promise<void>;
  #setReady!: (live: boolean, err?: unknown) => void;
  #call: grpc.ClientReadableStream<unknown> | undefined;
  #closed = false;

  constructor(
    connected: Promise<void>,
    open: () => grpc.ClientReadableStream<unknown>,
    map: (m: never) => T,
    error: (err: unknown) => CodedError,
    live?: (m: never) => boolean,
  ) {
    this.#connected = connected;
    // Iterating rethrows it; until then it is not an unhandled rejection.
    connected.catch(() => {});
    this.#open = open;
    this.#map = map;
    this.#error = error;
    this.#live = live;
    let settled = false;
    this.#ready = new Promise<void>((resolve, reject) => {
      this.#setReady = (ok, err) => {
        if (settled) return;
        settled = true;
        if (ok) resolve();
        else reject(err instanceof CodedError ? err : new CodedError(ErrorCode.Unavailable, 'the stream ended before it was live', { cause: err }));
      };
    });
    this.#ready.catch(() => {});
  }

  /** Resolves once the server has the stream live (see the class comment). */
  ready(): Promise<void> {
    return this.#ready;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    let live = this.#live === undefined;
    try {
      await this.#connected;
    } catch (err) {
      this.#setReady(false, err);
      throw err;
    }
    if (this.#closed) {
      this.#setReady(false);
      return;
    }
    const call = this.#open();
    this.#call = call;
    if (live) this.#setReady(true);
    try {
      for await (const m of call) {
        if (!live && this.#live?.(m as never)) {
          live = true;
          this.#setReady(true);
          continue;
        }
        yield this.#map(m as never);
      }
    } catch (err) {
      if (this.#closed) return;
      const e = this.#error(err);
      this.#setReady(false, e);
      throw e;
    } finally {
      this.#setReady(false);
      call.cancel();
    }
  }

  close(): void {
    this.#closed = true;
    this.#call?.cancel();
  }
}
