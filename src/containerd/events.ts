// containerd's event stream as an async iterable of typed events. A payload
// that does not decode is reported and skipped: it never ends the stream.
// The stream ends cleanly on close() and throws Unavailable when containerd
// goes away; the caller resubscribes and reconciles.
import { randomBytes } from 'node:crypto';
import type * as grpc from '@grpc/grpc-js';
import { typeName, type Any } from './any.js';
import type { CallOptions, Connection } from './connection.js';
import { ContainerdError, ErrorCode, fromGrpcError } from './errors.js';
import { hasMessage, messageCodec, toDate, toEpochMs, type Timestamp } from './wire.js';

const SERVICE = 'containerd.services.events.v1.Events';
const MARKER_TOPIC = '/plugind/subscribed';
const MARKER_TYPE = 'plugind.v1.SubscriptionMarker';

export interface TaskExit {
  containerId: string;
  /** Process id within the task; equal to containerId for the init process. */
  id: string;
  pid: number;
  /** 128+N when killed by signal N. */
  exitStatus: number;
  exitedAt?: Date;
}
export interface TaskStart {
  containerId: string;
  pid: number;
}
export interface TaskCreate {
  containerId: string;
  bundle: string;
  pid: number;
  io: { stdin: string; stdout: string; stderr: string; terminal: boolean };
}
export interface TaskDelete {
  containerId: string;
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt?: Date;
}
export interface TaskOOM {
  containerId: string;
}

interface EnvelopeBase {
  namespace: string;
  /** When the publisher (for task events, the shim) sent it. */
  timestamp: Date;
  /** The same instant in ms with sub-ms precision, for lag measurements. */
  timestampMs: number;
}

export type ContainerdEvent = EnvelopeBase &
  (
    | { topic: '/tasks/exit'; event: TaskExit }
    | { topic: '/tasks/start'; event: TaskStart }
    | { topic: '/tasks/create'; event: TaskCreate }
    | { topic: '/tasks/delete'; event: TaskDelete }
    | { topic: '/tasks/oom'; event: TaskOOM }
  );

type Topic = ContainerdEvent['topic'];

// Which payload type each topic we decode carries.
const PAYLOADS: Record<Topic, string> = {
  '/tasks/exit': 'containerd.events.TaskExit',
  '/tasks/start': 'containerd.events.TaskStart',
  '/tasks/create': 'containerd.events.TaskCreate',
  '/tasks/delete': 'containerd.events.TaskDelete',
  '/tasks/oom': 'containerd.events.TaskOOM',
};

interface WireEnvelope {
  timestamp: Timestamp | null;
  namespace: string;
  topic: string;
  event: Any | null;
}

export interface SubscribeOptions {
  /** containerd filters, ORed; e.g. `topic~="^/tasks/"`. Empty: everything in every namespace. */
  filters?: string[];
  /** Told about payloads that were skipped because they did not decode. */
  onDecodeError?: (err: Error, envelope: { topic: string; typeUrl: string }) => void;
}

/** Filters for the task events of one namespace. */
export function taskEventFilters(namespace: string): string[] {
  return [`namespace==${namespace},topic~="^/tasks/"`];
}

/** Filters for the exits and OOM kills of one namespace only: the task events plugind acts on. */
export function exitEventFilters(namespace: string): string[] {
  return [`namespace==${namespace},topic=="/tasks/exit"`, `namespace==${namespace},topic=="/tasks/oom"`];
}

function decodeEnvelope(env: WireEnvelope): ContainerdEvent | undefined {
  const payload = PAYLOADS[env.topic as Topic];
  if (!payload) return undefined;
  if (!env.event) throw new Error('envelope without payload');
  const got = typeName(env.event.typeUrl);
  if (got !== payload) throw new Error(`payload type ${got}, want ${payload}`);
  const decoded = messageCodec(payload).decode(env.event.value);
  for (const key of ['exitedAt'] as const) {
    if (key in decoded) decoded[key] = toDate(decoded[key] as Timestamp);
    if (decoded[key] === undefined) delete decoded[key];
  }
  const timestampMs = toEpochMs(env.timestamp) ?? Date.now();
  return {
    namespace: env.namespace,
    timestamp: new Date(Math.floor(timestampMs)),
    timestampMs,
    topic: env.topic,
    event: decoded,
  } as unknown as ContainerdEvent;
}

// Beyond this many undelivered events the gRPC stream is paused; the
// subscriber is too slow and containerd holds the rest.
const HIGH_WATER = 1024;

export class EventSubscription implements AsyncIterable<ContainerdEvent> {
  readonly #conn: Connection;
  readonly #call: grpc.ClientReadableStream<Record<string, unknown>>;
  readonly #token: string;
  readonly #onDecodeError: NonNullable<SubscribeOptions['onDecodeError']>;
  readonly #queue: ContainerdEvent[] = [];
  #waiter: (() => void) | undefined;
  #ended = false;
  #error: ContainerdError | undefined;
  #closed = false;
  /** Cancels a marker publish in flight when the subscription is closed. */
  readonly #abort = new AbortController();
  #live = false;
  #liveWaiters: Array<() => void> = [];

  constructor(conn: Connection, options: SubscribeOptions = {}) {
    this.#conn = conn;
    this.#token = randomBytes(8).toString('hex');
    this.#onDecodeError = options.onDecodeError ?? (() => {});
    const filters = [...(options.filters ?? [])];
    if (filters.length > 0) filters.push(`namespace==${conn.namespace},topic=="${MARKER_TOPIC}"`);
    this.#call = conn.serverStream(SERVICE, 'Subscribe', { filters }, 'subscribe to events');
    this.#call.on('data', (env: WireEnvelope) => this.#onEnvelope(env));
    this.#call.on('error', (err: Error & { code?: number }) => {
      if (this.#closed) return this.#finish();
      this.#error = fromGrpcError(err, 'event stream');
      // A stream that breaks because the server went away is always Unavailable
      // to the subscriber, whatever the transport reported.
      if (this.#error.code === ErrorCode.Unknown || this.#error.code === ErrorCode.Canceled) {
        this.#error = new ContainerdError(ErrorCode.Unavailable, this.#error.message, { cause: err });
      }
      this.#finish();
    });
    this.#call.on('end', () => this.#finish());
  }

  #onEnvelope(env: WireEnvelope): void {
    this.#markLive();
    if (env.topic === MARKER_TOPIC) return;
    let event: ContainerdEvent | undefined;
    try {
      event = decodeEnvelope(env);
    } catch (err) {
      this.#onDecodeError(err as Error, { topic: env.topic, typeUrl: env.event?.typeUrl ?? '' });
      return;
    }
    if (!event) return;
    this.#queue.push(event);
    if (this.#queue.length >= HIGH_WATER) this.#call.pause();
    this.#wake();
  }

  #markLive(): void {
    if (this.#live) return;
    this.#live = true;
    for (const w of this.#liveWaiters.splice(0)) w();
  }

  #finish(): void {
    this.#ended = true;
    this.#wake();
    for (const w of this.#liveWaiters.splice(0)) w();
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /**
   * Resolves once containerd is known to deliver to this subscription: an
   * event (or our own marker, published until it comes back) has arrived.
   * Events published after this resolves are not missed, which is what a
   * reconcile after resubscribing needs. Rejects if the stream ends first.
   */
  async ready(options: CallOptions = {}): Promise<void> {
    const deadline = Date.now() + (options.timeoutMs ?? this.#conn.timeoutMs);
    const live = new Promise<void>((resolve) => {
      if (this.#live || this.#ended) resolve();
      else this.#liveWaiters.push(resolve);
    });
    while (!this.#live && !this.#ended) {
      if (Date.now() >= deadline) {
        throw new ContainerdError(ErrorCode.DeadlineExceeded, 'event subscription: not confirmed live before the deadline');
      }
      await this.#conn.unary(
        SERVICE,
        'Publish',
        { topic: MARKER_TOPIC, event: { typeUrl: MARKER_TYPE, value: Buffer.from(this.#token) } },
        'publish subscription marker',
        { timeoutMs: Math.max(1, deadline - Date.now()), signal: this.#abort.signal },
      );
      await Promise.race([live, new Promise((r) => setTimeout(r, 50))]);
    }
    if (!this.#live) throw this.#error ?? new ContainerdError(ErrorCode.Unavailable, 'event subscription ended before it was live');
  }

  async *[Symbol.asyncIterator](): AsyncIterator<ContainerdEvent> {
    for (;;) {
      const next = this.#queue.shift();
      if (next) {
        if (this.#queue.length < HIGH_WATER / 2 && this.#call.isPaused()) this.#call.resume();
        yield next;
        continue;
      }
      if (this.#ended) {
        if (this.#error && !this.#closed) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => (this.#waiter = resolve));
    }
  }

  /** Ends the subscription; a pending iteration finishes without error. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    this.#call.cancel();
    this.#finish();
  }
}

export class Events {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  subscribe(options?: SubscribeOptions): EventSubscription {
    return new EventSubscription(this.#conn, options);
  }

  /** Publishes an event in this namespace; topic is `/a/b`, payload any Any. */
  async publish(topic: string, event: Any, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'Publish', { topic, event }, `publish ${topic}`, options);
  }
}

// Payload names must exist in protos/; checked once at load so a typo fails loudly.
for (const name of Object.values(PAYLOADS)) {
  if (!hasMessage(name)) throw new Error(`protos/ lacks ${name}`);
}
