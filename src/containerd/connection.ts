// One gRPC connection to containerd, shared by the per-resource clients. It is
// the only place that builds calls: namespace header, deadline, waitForReady
// and error mapping happen here once.
import * as grpc from '@grpc/grpc-js';
import { fromGrpcError, ContainerdError, ErrorCode } from './errors.js';
import { methodCodec, type MethodCodec } from './wire.js';

export interface ConnectionOptions {
  /** `unix:///run/containerd/containerd.sock`, or a bare absolute socket path. */
  address: string;
  /** containerd namespace sent with every call. */
  namespace: string;
  /** Deadline of each unary call, in ms. Default 10 000. */
  timeoutMs?: number;
}

export interface CallOptions {
  /** Overrides the connection's deadline for this call; Infinity for none. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** A lease id: what the call writes or prepares is kept from GC while the lease lives. */
  lease?: string;
}

const NAMESPACE_HEADER = 'containerd-namespace';
const LEASE_HEADER = 'containerd-lease';
// Namespace rule of containerd's identifiers package.
const NAMESPACE_RE = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // containerd accepts 16 MiB; grpc-js defaults to receiving 4.
  'grpc.max_receive_message_length': 16 << 20,
  'grpc.max_send_message_length': 16 << 20,
  // A local socket: come back quickly after containerd restarts.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.enable_retries': 0,
};

export function normalizeAddress(address: string): string {
  if (address.startsWith('unix://')) return address;
  if (address.startsWith('/')) return `unix://${address}`;
  throw new ContainerdError(ErrorCode.InvalidArgument, `containerd address ${JSON.stringify(address)}: want unix:///PATH or an absolute socket path`);
}

export class Connection {
  readonly address: string;
  readonly namespace: string;
  readonly timeoutMs: number;
  readonly #client: grpc.Client;
  readonly #methods = new Map<string, MethodCodec>();
  #closed = false;

  constructor(options: ConnectionOptions) {
    if (!NAMESPACE_RE.test(options.namespace) || options.namespace.length > 76) {
      throw new ContainerdError(ErrorCode.InvalidArgument, `namespace ${JSON.stringify(options.namespace)}: want [A-Za-z0-9]+([._-][A-Za-z0-9]+)*, at most 76 characters`);
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    if (!(timeoutMs > 0)) throw new ContainerdError(ErrorCode.InvalidArgument, `timeoutMs ${timeoutMs}: want a positive number`);
    this.address = normalizeAddress(options.address);
    this.namespace = options.namespace;
    this.timeoutMs = timeoutMs;
    this.#client = new grpc.Client(this.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  get closed(): boolean {
    return this.#closed;
  }

  #method(service: string, method: string): MethodCodec {
    const key = `${service}/${method}`;
    let codec = this.#methods.get(key);
    if (!codec) {
      codec = methodCodec(service, method);
      this.#methods.set(key, codec);
    }
    return codec;
  }

  // waitForReady: a call made while containerd restarts waits for it (within
  // its deadline) instead of failing at once with UNAVAILABLE.
  #metadata(lease: string | undefined, waitForReady = true): grpc.Metadata {
    const md = new grpc.Metadata({ waitForReady });
    md.set(NAMESPACE_HEADER, this.namespace);
    if (lease) md.set(LEASE_HEADER, lease);
    return md;
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new ContainerdError(ErrorCode.Unavailable, `${what}: connection closed`);
  }

  /** One unary call. `what` names the operation in errors ("get container foo"). */
  unary<Res>(service: string, method: string, request: object, what: string, options: CallOptions = {}): Promise<Res> {
    this.#checkOpen(what);
    const codec = this.#method(service, method);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const callOptions: grpc.CallOptions = Number.isFinite(timeoutMs) ? { deadline: Date.now() + timeoutMs } : {};
    return new Promise<Res>((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) {
        reject(new ContainerdError(ErrorCode.Canceled, `${what}: canceled`, { cause: signal.reason }));
        return;
      }
      const call = this.#client.makeUnaryRequest(
        codec.path,
        (value: object) => codec.request.encode(value),
        (bytes: Buffer) => codec.response.decode(bytes),
        request,
        this.#metadata(options.lease),
        callOptions,
        (err, value) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) reject(fromGrpcError(err, what, Number.isFinite(timeoutMs) ? timeoutMs : undefined));
          else resolve(value as Res);
        },
      );
      const onAbort = (): void => call.cancel();
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * A server-streaming call, without deadline unless given: it lives until
   * cancelled. Without waitForReady (the default): a subscriber wants to
   * know at once that containerd is away, so that it can reconcile after
   * resubscribing.
   */
  serverStream(
    service: string,
    method: string,
    request: object,
    what: string,
    options: { lease?: string; waitForReady?: boolean; timeoutMs?: number } = {},
  ): grpc.ClientReadableStream<Record<string, unknown>> {
    this.#checkOpen(what);
    const codec = this.#method(service, method);
    return this.#client.makeServerStreamRequest(
      codec.path,
      (value: object) => codec.request.encode(value),
      (bytes: Buffer) => codec.response.decode(bytes),
      request,
      this.#metadata(options.lease, options.waitForReady ?? false),
      options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs },
    );
  }

  /** A bidirectional stream (content writes); it waits for a restarting containerd like a unary call. */
  duplexStream(service: string, method: string, what: string, options: { lease?: string } = {}): grpc.ClientDuplexStream<object, Record<string, unknown>> {
    this.#checkOpen(what);
    const codec = this.#method(service, method);
    return this.#client.makeBidiStreamRequest(
      codec.path,
      (value: object) => codec.request.encode(value),
      (bytes: Buffer) => codec.response.decode(bytes),
      this.#metadata(options.lease),
      {},
    );
  }

  /** Closes the channel; calls in flight fail with CANCELLED. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.close();
  }
}
