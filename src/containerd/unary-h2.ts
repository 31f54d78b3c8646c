// Unary gRPC calls to containerd on one HTTP/2 session of Node's own, with
// no grpc-js in between: a call is a HEADERS frame, one length-prefixed
// message and the reply's trailers (grpc-status, grpc-message). Measured
// against containerd here, a call costs about half the CPU it costs through
// grpc-js (its channel, load-balancing, filter and metadata layers), and
// every plugin lifecycle makes several. Streams (events, content writes)
// stay on grpc-js.
//
// As grpc-js with waitForReady: a call made while nothing answers at the
// socket (containerd restarting) waits for it, connecting again with a
// backoff, until its deadline; a call in flight when the session ends fails
// UNAVAILABLE; a passed deadline cancels the stream (DEADLINE_EXCEEDED).
import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import { status as GrpcStatus } from '@grpc/grpc-js';

/** What a failed call rejects with: fromGrpcError (errors.ts) reads code and details. */
export class UnaryError extends Error {
  readonly code: number;
  readonly details: string;
  constructor(code: number, details: string) {
    super(`${code} ${GrpcStatus[code] ?? ''}: ${details}`);
    this.code = code;
    this.details = details;
  }
}

export interface UnaryCall {
  path: string;
  body: Buffer;
  /** Metadata (lower-case names). */
  headers: Record<string, string>;
  /** Absolute, ms since the epoch; Infinity for none. */
  deadline: number;
  waitForReady: boolean;
  maxReceive: number;
  signal?: AbortSignal | undefined;
}

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 1000;
// Stream ids run out at 2^31; a session is replaced well before.
const CALLS_PER_SESSION = 1 << 29;

function grpcMessage(value: unknown): string {
  const text = typeof value === 'string' ? value : '';
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export class UnaryTransport {
  readonly #socket: string;
  #session: ClientHttp2Session | undefined;
  #connecting: Promise<ClientHttp2Session> | undefined;
  #calls = 0;
  #active = 0;
  #closed = false;

  constructor(socketPath: string) {
    this.#socket = socketPath;
  }

  close(): void {
    this.#closed = true;
    this.#session?.destroy();
    this.#session = undefined;
  }

  /** A connected session, made if there is none; rejects if nothing answers now. */
  #connect(): Promise<ClientHttp2Session> {
    const live = this.#session;
    if (live && !live.closed && !live.destroyed && this.#calls < CALLS_PER_SESSION) return Promise.resolve(live);
    if (live) {
      // Out of stream ids soon: the calls on it finish, new ones go to a new session.
      live.close();
      this.#session = undefined;
    }
    this.#connecting ??= new Promise<ClientHttp2Session>((resolve, reject) => {
      const session = http2.connect('http://localhost', { createConnection: () => net.connect(this.#socket) });
      const failed = (err: Error): void => {
        this.#connecting = undefined;
        session.destroy();
        reject(err);
      };
      session.once('error', failed);
      session.once('connect', () => {
        session.off('error', failed);
        this.#connecting = undefined;
        this.#calls = 0;
        const drop = (): void => {
          if (this.#session === session) this.#session = undefined;
        };
        session.on('error', drop);
        session.once('close', drop);
        session.once('goaway', drop);
        if (this.#active === 0) session.unref();
        this.#session = session;
        resolve(session);
      });
    });
    return this.#connecting;
  }

  /** The reply's message bytes; rejects with an UnaryError. */
  async call(c: UnaryCall): Promise<Buffer> {
    let backoff = BACKOFF_MIN_MS;
    let session: ClientHttp2Session;
    for (;;) {
      if (this.#closed) throw new UnaryError(GrpcStatus.CANCELLED, 'connection closed');
      if (c.signal?.aborted) throw new UnaryError(GrpcStatus.CANCELLED, 'canceled');
      try {
        session = await this.#connect();
        break;
      } catch (err) {
        const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        if (!c.waitForReady) throw new UnaryError(GrpcStatus.UNAVAILABLE, `containerd not reachable (${why})`);
        const left = c.deadline - Date.now();
        if (left <= 0) throw new UnaryError(GrpcStatus.DEADLINE_EXCEEDED, `deadline passed while containerd was not reachable (${why})`);
        await new Promise((r) => setTimeout(r, Math.min(backoff, left)));
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
    return this.#send(session, c);
  }

  #send(session: ClientHttp2Session, c: UnaryCall): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const left = c.deadline - Date.now();
      if (left <= 0) {
        reject(new UnaryError(GrpcStatus.DEADLINE_EXCEEDED, 'deadline passed'));
        return;
      }
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':path': c.path,
        'content-type': 'application/grpc',
        te: 'trailers',
        ...c.headers,
      };
      if (Number.isFinite(left)) headers['grpc-timeout'] = `${Math.ceil(left)}m`;
      this.#calls += 1;
      if (this.#active++ === 0) session.ref();
      const stream = session.request(headers);
      const parts: Buffer[] = [];
      let size = 0;
      let status: number | undefined;
      let message = '';
      let settled = false;
      const settle = (err: UnaryError | undefined, value?: Buffer): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        c.signal?.removeEventListener('abort', onAbort);
        if (--this.#active === 0 && !session.destroyed) session.unref();
        if (err) {
          if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
          reject(err);
        } else resolve(value as Buffer);
      };
      const timer = Number.isFinite(left) ? setTimeout(() => settle(new UnaryError(GrpcStatus.DEADLINE_EXCEEDED, 'deadline passed')), left) : undefined;
      const onAbort = (): void => settle(new UnaryError(GrpcStatus.CANCELLED, 'canceled'));
      c.signal?.addEventListener('abort', onAbort, { once: true });
      const readStatus = (h: http2.IncomingHttpHeaders): void => {
        if (h['grpc-status'] === undefined) return;
        status = Number(h['grpc-status']);
        message = grpcMessage(h['grpc-message']);
      };
      stream.on('response', (h) => {
        const code = Number(h[':status']);
        if (code !== 200) settle(new UnaryError(code === 503 || code === 502 ? GrpcStatus.UNAVAILABLE : GrpcStatus.UNKNOWN, `HTTP status ${code}`));
        // A trailers-only reply (an error) has its status here.
        else readStatus(h);
      });
      stream.on('trailers', readStatus);
      stream.on('data', (d: Buffer) => {
        size += d.length;
        if (size > c.maxReceive + 5) settle(new UnaryError(GrpcStatus.RESOURCE_EXHAUSTED, `reply larger than ${c.maxReceive} bytes`));
        else parts.push(d);
      });
      stream.on('error', (err: Error) => settle(new UnaryError(this.#closed ? GrpcStatus.CANCELLED : GrpcStatus.UNAVAILABLE, err.message)));
      stream.on('close', () => {
        if (settled) return;
        if (status === undefined) {
          settle(new UnaryError(this.#closed ? GrpcStatus.CANCELLED : GrpcStatus.UNAVAILABLE, 'stream closed without a status (containerd went away)'));
          return;
        }
        if (status !== GrpcStatus.OK) {
          settle(new UnaryError(status, message));
          return;
        }
        const data = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
        if (data.length < 5 || data[0] !== 0) {
          settle(new UnaryError(GrpcStatus.INTERNAL, data.length < 5 ? 'reply without a message' : 'compressed reply'));
          return;
        }
        settle(undefined, data.subarray(5, 5 + data.readUInt32BE(1)));
      });
      const frame = Buffer.allocUnsafe(5 + c.body.length);
      frame[0] = 0;
      frame.writeUInt32BE(c.body.length, 1);
      c.body.copy(frame, 5);
      stream.end(frame);
    });
  }
}
