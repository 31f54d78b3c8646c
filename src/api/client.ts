// A typed client for plugind.v1, used by the CLI, tests and benchmarks.
// gRPC status codes come back as CodedErrors with our codes.
import * as grpc from '@grpc/grpc-js';
import { CodedError, ErrorCode } from '../common/errors.js';
import { MAX_SPEC_BYTES, MAX_STOP_TIMEOUT_MS } from '../common/limits.js';
import type { Resources } from '../common/resources.js';
import { date, image, plugin, pluginStats, type PluginStats, type WireStats, type ExecOutput, type ExitEvent, type Image, type Plugin, type PullEvent, type PullOptions, type RunOptions, type WireImage, type WirePlugin } from './client-wire.js';
import { ServerStream } from './server-stream.js';
import {
  debugService,
  fromGrpcStatus,
  grpcTarget,
  isShutdownStatus,
  parseApiAddress,
  pluginsService,
  probe,
  readTls,
  timestampMs,
  toTimestamp,
  type ApiAddress,
  type Timestamp,
  type TlsFiles,
} from './wire.js';

export { ServerStream };
export type { ExecOutput, ExitEvent, HealthCheck, PluginHealth, Image, Plugin, PluginBundleInfo, PluginStats, PullEvent, PullOptions, RunOptions } from './client-wire.js';

type Stub = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

// How long the first call waits to learn whether anything listens. A local
// socket answers in well under a millisecond.
const PROBE_TIMEOUT_MS = 1000;

/**
 * Why nothing can answer at the address, for the connect errors that settle
 * it at once; any other is left to gRPC's own connect and its timeout.
 */
function unreachable(err: NodeJS.ErrnoException, a: ApiAddress): string | undefined {
  const running = 'is `plugind serve` running?';
  switch (err.code) {
    case 'ENOENT':
      return `no such socket (ENOENT); ${running}`;
    case 'ECONNREFUSED':
      return `${a.kind === 'unix' ? 'nothing listens on the socket' : 'connection refused'} (ECONNREFUSED); ${running}`;
    case 'EACCES':
      return 'permission denied (EACCES): the API socket is root-only, unless `plugind serve --group GROUP` lets a group in';
    default:
      return undefined;
  }
}

export interface ClientOptions {
  /** Per-call deadline for unary calls. Default 60 s (a stop may wait its timeout). */
  timeoutMs?: number;
  /** How long to wait for plugind to accept the connection. Default 10 s. */
  connectTimeoutMs?: number;
  /** Mutual TLS for a tcp:// address: our cert and key, the CA of plugind's cert. */
  tls?: Partial<TlsFiles>;
}

export class PluginsClient {
  readonly #stub: Stub;
  readonly #timeoutMs: number;
  readonly #connectTimeoutMs: number;
  readonly #address: string;
  readonly #target: ApiAddress;
  #connected: Promise<void> | undefined;

  constructor(address: string, options: ClientOptions = {}) {
    this.#address = address;
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    const Ctor = grpc.makeGenericClientConstructor(pluginsService(), 'Plugins');
    const tls = readTls(options.tls ?? {});
    const creds = tls ? grpc.credentials.createSsl(tls.ca, tls.key, tls.cert) : grpc.credentials.createInsecure();
    this.#target = parseApiAddress(address, { tls: Boolean(tls) });
    this.#stub = new Ctor(grpcTarget(this.#target), creds, {
      'grpc.max_receive_message_length': 32 << 20,
      'grpc.max_send_message_length': 32 << 20,
    }) as unknown as Stub;
    this.#timeoutMs = options.timeoutMs ?? 60_000;
  }

  /**
   * Resolves once plugind accepts the connection. When nothing can answer
   * (no socket, nobody listening, no permission) it rejects at once saying
   * which; a failure is not kept, so a later call tries again.
   */
  connected(): Promise<void> {
    this.#connected ??= this.#connect().catch((err: unknown) => {
      this.#connected = undefined;
      throw err;
    });
    return this.#connected;
  }

  async #connect(): Promise<void> {
    const cannot = `cannot reach plugind at ${this.#address}`;
    const refused = await probe(this.#target, PROBE_TIMEOUT_MS);
    const why = refused && unreachable(refused, this.#target);
    if (why) throw new CodedError(ErrorCode.Unavailable, `${cannot}: ${why}`, { cause: refused });
    await new Promise<void>((resolve, reject) =>
      this.#stub.waitForReady(Date.now() + this.#connectTimeoutMs, (err) =>
        err
          ? reject(new CodedError(ErrorCode.Unavailable, `${cannot}: no gRPC session within ${this.#connectTimeoutMs / 1000} s (not plugind, or TLS refused)`, { cause: err }))
          : resolve(),
      ),
    );
  }

  /**
   * A failed call's error. An UNAVAILABLE that is not a plugin's answer (a
   * shard worker being replaced, with the channel still up) means plugind
   * went away: it shut down (its streams end with the shutdown trailer) or
   * the connection dropped (the channel left READY).
   */
  #error(err: unknown): CodedError {
    const e = fromGrpcStatus(err);
    if (e.code !== ErrorCode.Unavailable) return e;
    const shutdown = isShutdownStatus(err);
    if (!shutdown && this.#stub.getChannel().getConnectivityState(false) === grpc.connectivityState.READY) return e;
    return new CodedError(ErrorCode.Unavailable, `plugind went away (${this.#address}): ${shutdown ? 'it is shutting down' : 'connection lost'}`, { cause: err });
  }

  async #unary<T>(method: string, req: object, timeoutMs = this.#timeoutMs): Promise<T> {
    await this.connected();
    return new Promise((resolve, reject) => {
      const fn = this.#stub[method] as (...a: unknown[]) => unknown;
      // waitForReady: once connected, a call made while plugind restarts
      // waits for it (within its deadline) instead of failing at once.
      fn.call(this.#stub, req, new grpc.Metadata({ waitForReady: true }), { deadline: Date.now() + timeoutMs }, (err: unknown, res: T) =>
        err ? reject(this.#error(err)) : resolve(res),
      );
    });
  }

  async run(id: string, options: RunOptions): Promise<{ id: string; pid: number; shard: number }> {
    // plugind would answer this too, but a spec past the message limit never reaches it.
    const bytes = options.specJson === undefined ? 0 : Buffer.byteLength(options.specJson);
    if (bytes > MAX_SPEC_BYTES) throw new CodedError(ErrorCode.InvalidArgument, `plugin ${id}: --spec is ${bytes} bytes; at most ${MAX_SPEC_BYTES}`);
    // A Docker plugin's run lasts until its socket answers: the deadline allows for its ready timeout.
    const wait = options.bundle || options.image ? Math.min((options.readyTimeoutSeconds ?? 10) * 1000, MAX_STOP_TIMEOUT_MS) : 0;
    return this.#unary('Run', { id, ...options }, this.#timeoutMs + (Number.isFinite(wait) && wait > 0 ? wait : 0));
  }

  async inspect(id: string): Promise<Plugin> {
    return plugin(await this.#unary<WirePlugin>('Inspect', { id }));
  }

  async list(): Promise<Plugin[]> {
    return (await this.#unary<{ plugins: WirePlugin[] }>('List', {})).plugins.map(plugin);
  }

  async signal(id: string, signal: string): Promise<boolean> {
    return (await this.#unary<{ delivered: boolean }>('Signal', { id, signal })).delivered;
  }

  async stop(id: string, timeoutSeconds?: number): Promise<{ exitStatus: number; exitedAt: Date | undefined }> {
    const req: Record<string, unknown> = { id };
    if (timeoutSeconds !== undefined) req.timeoutSeconds = timeoutSeconds;
    // The call may last as long as the stop timeout; plugind refuses more than an hour.
    const wait = Number.isFinite(timeoutSeconds) ? Math.min(Math.max((timeoutSeconds as number) * 1000, 0), MAX_STOP_TIMEOUT_MS) : 0;
    const deadline = this.#timeoutMs + wait;
    const res = await this.#unary<{ exitStatus: number; exitedAt: Timestamp | null }>('Stop', req, deadline);
    return { exitStatus: res.exitStatus, exitedAt: date(res.exitedAt) };
  }

  /** New limits for a plugin (running or stopped); the plugin after. */
  async update(id: string, resources: Resources): Promise<Plugin> {
    return plugin(await this.#unary<WirePlugin>('Update', { id, resources }));
  }

  /** Usage of these plugins (a stopped one as zeros), or of every running one. */
  async stats(ids: string[] = []): Promise<PluginStats[]> {
    return (await this.#unary<{ stats: WireStats[] }>('Stats', { ids })).stats.map(pluginStats);
  }

  async remove(id: string, force = false): Promise<void> {
    await this.#unary('Remove', { id, force });
  }

  #stream<T>(method: string, req: object, map: (m: never) => T, live?: (m: never) => boolean): ServerStream<T> {
    return new ServerStream(
      this.connected(),
      () => (this.#stub[method] as (...a: unknown[]) => grpc.ClientReadableStream<unknown>).call(this.#stub, req, new grpc.Metadata({ waitForReady: true })),
      map,
      (err) => this.#error(err),
      live,
    );
  }

  /**
   * The plugin's output as it wrote it: one stream or both, the last tail
   * bytes of each stream or tailLines lines, written since/until, each line
   * led by its time with timestamps, and with follow what it writes next.
   */
  logs(
    id: string,
    options: { stream?: 'stdout' | 'stderr'; tail?: number; tailLines?: number; follow?: boolean; timestamps?: boolean; since?: Date; until?: Date } = {},
  ): ServerStream<{ stream: string; data: Buffer }> {
    const req: Record<string, unknown> = { id, stream: options.stream ?? '', follow: options.follow ?? false, timestamps: options.timestamps ?? false };
    if (options.tail !== undefined) req.tail = options.tail;
    if (options.tailLines !== undefined) req.tailLines = options.tailLines;
    if (options.since) req.since = toTimestamp(options.since.getTime());
    if (options.until) req.until = toTimestamp(options.until.getTime());
    return this.#stream('Logs', req, (m: { stream: string; data: Buffer }) => m);
  }

  /**
   * Runs a process in a running plugin's container (args empty: /bin/sh),
   * env KEY=VALUE over the plugin's; its stdout and stderr as they come, its
   * exit status last. close() kills the process.
   */
  exec(id: string, args: string[] = [], env: string[] = []): ServerStream<ExecOutput> {
    return this.#stream('Exec', { id, args, env }, (m: { stream: string; data: Buffer; exited: boolean; exitStatus: number }): ExecOutput =>
      m.exited ? { exitStatus: m.exitStatus } : { stream: m.stream === 'stderr' ? 'stderr' : 'stdout', data: m.data },
    );
  }

  /**
   * Exits as plugind handles them, from now on, until close(); with ids,
   * only theirs. since: first those plugind remembers told since then (its
   * last 1,000); until: the stream ends at that time (a past one: after the
   * replay). ready() resolves once plugind has registered the stream: no
   * exit after that is missed.
   */
  events(options: { ids?: string[]; since?: Date; until?: Date } = {}): ServerStream<ExitEvent> {
    const req = {
      ids: options.ids ?? [],
      since: options.since ? toTimestamp(options.since.getTime()) : null,
      until: options.until ? toTimestamp(options.until.getTime()) : null,
    };
    return this.#stream(
      'Events',
      req,
      (m: { id: string; pid: number; exitStatus: number; exitedAt: Timestamp | null; eventTimestamp: Timestamp | null; oomKilled: boolean }) => {
        const e: ExitEvent = { id: m.id, pid: m.pid, exitStatus: m.exitStatus, exitedAt: date(m.exitedAt) };
        const eventMs = timestampMs(m.eventTimestamp);
        if (eventMs !== undefined) e.eventTimestampMs = eventMs;
        if (m.oomKilled) e.oomKilled = true;
        return e;
      },
      (m: { subscribed: boolean }) => m.subscribed,
    );
  }

  /** The pull's progress, the image last (see PullEvent); close() cancels it. */
  pull(ref: string, options: PullOptions = {}): ServerStream<PullEvent> {
    const req = { ref, insecureRegistry: options.insecureRegistry ?? false, username: options.username ?? '', password: options.password ?? '' };
    return this.#stream('Pull', req, (m: Omit<PullEvent, 'image'> & { image: WireImage | null }) => {
      const e: PullEvent = { digest: m.digest, kind: m.kind, status: m.status, done: m.done, total: m.total };
      if (m.image) e.image = image(m.image);
      return e;
    });
  }

  /** Pulls and resolves to the image, ignoring progress. */
  async pullImage(ref: string, options: PullOptions = {}): Promise<Image> {
    let last: Image | undefined;
    for await (const e of this.pull(ref, options)) if (e.image) last = e.image;
    if (!last) throw new CodedError(ErrorCode.Unknown, `pull ${ref}: the stream ended without the image`);
    return last;
  }

  async images(): Promise<Image[]> {
    return (await this.#unary<{ images: WireImage[] }>('Images', {})).images.map(image);
  }

  async removeImage(ref: string): Promise<void> {
    await this.#unary('RemoveImage', { ref });
  }

  /** Test hook (plugind with PLUGIND_TEST_HOOKS=1): kills a shard's worker thread. */
  async crashWorker(shard: number): Promise<void> {
    const Ctor = grpc.makeGenericClientConstructor(debugService(), 'Debug');
    const debug = new Ctor('unused', grpc.credentials.createInsecure(), { channelOverride: this.#stub.getChannel() }) as unknown as Stub;
    await new Promise<void>((resolve, reject) =>
      (debug['CrashWorker'] as (...a: unknown[]) => unknown).call(debug, { shard }, { deadline: Date.now() + 10_000 }, (err: unknown) =>
        err ? reject(this.#error(err)) : resolve(),
      ),
    );
  }

  close(): void {
    this.#stub.close();
  }
}
