// The plugind.v1 gRPC server: turns API calls into coordinator calls and
// coordinator errors into gRPC status codes whose messages name the plugin.
// Calls that arrive while plugind is still restoring wait for it.
import * as grpc from '@grpc/grpc-js';
import { chmod, chown, readFile, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { CodedError, ErrorCode, invalidInput as invalid } from '../common/errors.js';
import { silentLogger, type Logger } from '../common/log.js';
import type { Coordinator } from '../coordinator/index.js';
import type { LogsOptions, StreamName } from '../executor/index.js';
import type { ImageStore, PullProgress } from '../images/index.js';
import { streamEvents, type EventsCall } from './events-stream.js';
import { operateHandlers } from './operate.js';
import { imageMessage, pluginMessage, ts } from './server-messages.js';
import { specFromRun, type RunDefaults, type RunRequest } from './run-request.js';
import {
  debugService,
  grpcTarget,
  listenRefused,
  parseApiAddress,
  pluginsService,
  probe,
  readTls,
  shutdownStatus,
  timestampMs,
  toGrpcStatus,
  type Timestamp,
  type ApiAddress,
  type TlsFiles,
} from './wire.js';

// Room for a spec well past the 1 MiB we accept, so that an oversized one
// is answered INVALID_ARGUMENT with its size rather than RESOURCE_EXHAUSTED.
const MAX_MESSAGE = 32 << 20;

export interface ApiServerOptions {
  coordinator: Coordinator;
  /** unix:///PATH (created 0600) or tcp://127.0.0.1:PORT. */
  address: string;
  /** containerd namespace, for the default spec's cgroup path. */
  namespace: string;
  /** Resolves when the coordinator has restored; calls wait for it. */
  ready: Promise<void>;
  /** What plugins get when their run request does not say (`serve --init`). */
  runDefaults?: RunDefaults;
  /** Plugin images (Pull, Images, RemoveImage); without it those calls are UNAVAILABLE. */
  images?: ImageStore;
  /** Serve the Debug service (tests). */
  testHooks?: boolean;
  /** Mutual TLS (TCP only): clients must present a cert signed by the CA. */
  tls?: Partial<TlsFiles>;
  /** Unix socket: mode 0660 and this group (name or gid) instead of 0600. */
  group?: string;
  logger?: Logger;
}

interface LogsCall {
  id: string;
  stream: string;
  tail?: number;
  follow: boolean;
  tailLines?: number;
  timestamps: boolean;
  since: Timestamp | null;
  until: Timestamp | null;
}

interface PullRequest {
  ref: string;
  insecureRegistry: boolean;
  username: string;
  password: string;
}

export class ApiServer {
  readonly address: ApiAddress;
  readonly #server: grpc.Server;
  readonly #o: ApiServerOptions;
  readonly #log: Logger;
  readonly #streams = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  #boundPort = 0;
  #bound = false;
  readonly #tls: ReturnType<typeof readTls>;

  constructor(options: ApiServerOptions) {
    this.#o = options;
    this.#log = options.logger ?? silentLogger;
    this.#tls = readTls(options.tls ?? {});
    this.address = checkedAddress(options.address, Boolean(this.#tls), options.group);
    this.#server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE });
    this.#server.addService(pluginsService(), this.#handlers());
    if (options.testHooks) {
      this.#server.addService(debugService(), {
        CrashWorker: this.#unary(async (req: { shard: number }) => {
          await options.coordinator.crashWorker(req.shard);
          return {};
        }),
      });
    }
  }

  /** The TCP port bound (useful with port 0). */
  get port(): number {
    return this.#boundPort;
  }

  #unary<Req, Res>(fn: (req: Req) => Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      this.#o.ready
        .then(() => fn(call.request))
        .then(
          (res) => callback(null, res),
          (err: unknown) => {
            callback(toGrpcStatus(err));
          },
        );
    };
  }

  /** A server stream that waits for the restore, is ended by close(), and ends with fn's error as a status. */
  #serverStream<Req>(fn: (call: grpc.ServerWritableStream<Req, unknown>) => Promise<void>): grpc.handleServerStreamingCall<Req, unknown> {
    return (call) => {
      this.#streams.add(call as grpc.ServerWritableStream<unknown, unknown>);
      this.#o.ready
        .then(() => fn(call))
        .then(
          () => {
            if (!call.writableEnded) call.end();
          },
          (err: unknown) => endStream(call as grpc.ServerWritableStream<unknown, unknown>, toGrpcStatus(err)),
        )
        .finally(() => this.#streams.delete(call as grpc.ServerWritableStream<unknown, unknown>));
    };
  }

  #handlers(): grpc.UntypedServiceImplementation {
    const co = this.#o.coordinator;
    return {
      ...operateHandlers(co, { unary: (fn) => this.#unary(fn), serverStream: (fn) => this.#serverStream(fn) }, pluginMessage),
      Run: this.#unary(async (req: RunRequest) => {
        const plan = specFromRun(req, this.#o.namespace, this.#o.runDefaults);
        const options = { replace: req.replace };
        const { pid, shard } =
          plan.kind === 'bundle'
            ? await co.runBundle(req.id, plan.bundle, plan.settings, options)
            : plan.kind === 'image'
              ? await co.runImage(req.id, plan.image, plan.settings, options)
              : await co.run(req.id, plan.spec, plan.settings, options);
        return { id: req.id, pid, shard };
      }),
      Inspect: this.#unary(async (req: { id: string }) => pluginMessage(await co.inspect(req.id))),
      List: this.#unary(async () => ({ plugins: (await co.list()).map(pluginMessage) })),
      Signal: this.#unary(async (req: { id: string; signal: string }) => {
        if (!req.signal) throw invalid(`plugin ${req.id}: no signal given`);
        return { delivered: await co.signal(req.id, req.signal) };
      }),
      Stop: this.#unary(async (req: { id: string; timeoutSeconds?: number }) => {
        const timeoutMs = req.timeoutSeconds === undefined ? 10_000 : req.timeoutSeconds * 1000;
        const exit = await co.stop(req.id, timeoutMs);
        return { exitStatus: exit.exitStatus, exitedAt: ts(exit.exitedAt) };
      }),
      Remove: this.#unary(async (req: { id: string; force: boolean }) => {
        await co.remove(req.id, req.force);
        return {};
      }),
      Logs: this.#serverStream((call: grpc.ServerWritableStream<LogsCall, unknown>) => this.#logs(call)),
      Pull: this.#serverStream((call: grpc.ServerWritableStream<PullRequest, unknown>) => this.#pull(call)),
      Images: this.#unary(async () => ({ images: (await this.#images().list()).map(imageMessage) })),
      RemoveImage: this.#unary(async (req: { ref: string }) => {
        await this.#images().remove(req.ref);
        return {};
      }),
      Events: (call: grpc.ServerWritableStream<EventsCall, unknown>) => {
        this.#streams.add(call);
        let done = (): void => {};
        const end = (): void => {
          done();
          this.#streams.delete(call);
        };
        call.on('cancelled', end);
        call.on('close', end);
        call.on('error', end);
        try {
          done = streamEvents(co, call);
        } catch (err) {
          endStream(call, toGrpcStatus(err));
        }
      },
    };
  }

  #images(): ImageStore {
    if (!this.#o.images) throw new CodedError(ErrorCode.Unavailable, 'this plugind keeps no images');
    return this.#o.images;
  }

  /** A pull's progress as it goes, the image last; a client that goes away cancels it. */
  async #pull(call: grpc.ServerWritableStream<PullRequest, unknown>): Promise<void> {
    const req = call.request;
    const abort = new AbortController();
    if (call.cancelled) abort.abort();
    call.on('cancelled', () => abort.abort());
    if (Boolean(req.username) !== Boolean(req.password)) throw invalid(`pull ${req.ref}: give both a username and a password, or neither`);
    const onProgress = (p: PullProgress): void => {
      if (!abort.signal.aborted && !call.writableEnded) call.write(p);
    };
    const image = await this.#images().pull(req.ref, {
      insecure: req.insecureRegistry,
      onProgress,
      signal: abort.signal,
      ...(req.username ? { credentials: { username: req.username, password: req.password } } : {}),
    });
    if (!call.writableEnded) call.write({ image: imageMessage(image) });
  }

  /** A plugin's output as the coordinator reads it, at the pace the client takes it. */
  async #logs(call: grpc.ServerWritableStream<LogsCall, unknown>): Promise<void> {
    const req = call.request;
    if (req.stream && req.stream !== 'stdout' && req.stream !== 'stderr') throw invalid(`plugin ${req.id}: stream ${JSON.stringify(req.stream)}: want stdout or stderr`);
    const opts: LogsOptions = { follow: req.follow, timestamps: req.timestamps };
    if (req.stream) opts.stream = req.stream as StreamName;
    if (req.tail !== undefined) opts.tail = req.tail;
    if (req.tailLines !== undefined) opts.tailLines = req.tailLines;
    const since = timestampMs(req.since);
    const until = timestampMs(req.until);
    if (since !== undefined) opts.sinceMs = since;
    if (until !== undefined) opts.untilMs = until;
    for await (const chunk of this.#o.coordinator.logs(req.id, opts)) {
      // Ended by close() (with its own status), or the client went away.
      if (call.cancelled || call.writableEnded) break;
      if (!call.write({ stream: chunk.stream, data: chunk.data })) {
        await new Promise<void>((resolve) => {
          call.once('drain', resolve);
          call.once('cancelled', resolve);
        });
      }
    }
  }

  /**
   * Binds and starts serving. A unix socket is created mode 0600 (umask, so
   * it never exists with wider access); a stale socket left by a plugind
   * that died is replaced, a live one is refused.
   */
  async listen(): Promise<void> {
    const a = this.address;
    if (a.kind === 'unix') await removeStaleSocket(a.path);
    const gid = this.#o.group === undefined ? undefined : await resolveGroup(this.#o.group);
    const creds = this.#tls
      ? grpc.ServerCredentials.createSsl(this.#tls.ca, [{ cert_chain: this.#tls.cert, private_key: this.#tls.key }], true)
      : grpc.ServerCredentials.createInsecure();
    const old = a.kind === 'unix' ? process.umask(0o177) : undefined;
    try {
      this.#boundPort = await new Promise<number>((resolve, reject) =>
        this.#server.bindAsync(grpcTarget(a), creds, (err, port) => (err ? reject(err) : resolve(port))),
      );
    } finally {
      if (old !== undefined) process.umask(old);
    }
    this.#bound = true;
    // Bound 0600 (umask) before anything could connect; a group is let in after.
    if (a.kind === 'unix' && gid !== undefined) {
      await chown(a.path, 0, gid);
      await chmod(a.path, 0o660);
    }
    this.#log.info({ address: a.kind === 'unix' ? `unix://${a.path}` : `tcp://${a.host}:${this.#boundPort}` }, 'API listening');
  }

  /**
   * Stops accepting, ends open streams, waits for unary calls in flight
   * (bounded). Streams end UNAVAILABLE, not OK: a client must not take a
   * `logs --follow` or `events` cut short for one that has finished.
   */
  async close(): Promise<void> {
    for (const s of this.#streams) endStream(s, shutdownStatus());
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, 5000);
      this.#server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    // Only a socket of ours: one we did not bind may be another plugind's.
    if (this.address.kind === 'unix' && this.#bound) await unlink(this.address.path).catch(() => {});
  }
}

interface AddressOptions {
  tls?: Partial<TlsFiles>;
  group?: string;
}

/** The API address, or INVALID_ARGUMENT if it does not go with the TLS and group settings. */
export function validateApiAddress(address: string, options: AddressOptions = {}): ApiAddress {
  return checkedAddress(address, Boolean(readTls(options.tls ?? {})), options.group);
}

function checkedAddress(address: string, tls: boolean, group: string | undefined): ApiAddress {
  const a = parseApiAddress(address, { tls });
  if (tls && a.kind === 'unix') throw invalid('TLS applies to a tcp:// address, not a unix socket');
  if (group !== undefined && a.kind !== 'unix') throw invalid('--group applies to a unix socket');
  if (a.kind === 'unix' && Buffer.byteLength(a.path) > 107) throw invalid(`API socket path ${a.path} is longer than 107 bytes`);
  return a;
}

/**
 * What listen() would refuse, found before `serve` starts anything: a bad
 * address, TLS or group, a live plugind on the socket, a TCP port in use.
 */
export async function checkApiAddress(address: string, options: AddressOptions = {}): Promise<void> {
  const a = validateApiAddress(address, options);
  if (options.group !== undefined) await resolveGroup(options.group);
  if (a.kind === 'unix') {
    await removeStaleSocket(a.path);
  } else {
    await new Promise<void>((resolve, reject) => {
      const trial = createServer();
      trial.once('error', (err: NodeJS.ErrnoException) => reject(listenRefused('--address', address, err)));
      trial.listen(a.port, a.host, () => trial.close(() => resolve()));
    });
  }
}

/**
 * Ends a server stream with a status (grpc-js sends a server stream's status
 * from its 'error' event); one that has ended already keeps the status it has.
 */
function endStream(call: grpc.ServerWritableStream<unknown, unknown>, status: Partial<grpc.StatusObject>): void {
  if (!call.writableEnded) call.emit('error', Object.assign(new Error(status.details), status));
}

async function removeStaleSocket(path: string): Promise<void> {
  // A socket that neither accepts nor refuses within the probe's bound may be a busy plugind: left alone.
  const err = await probe({ kind: 'unix', path });
  if (err === undefined || err.code === 'ETIMEDOUT') throw new CodedError(ErrorCode.AlreadyExists, `another plugind is serving on ${path}`);
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
  });
}

/** A group name (from /etc/group) or a numeric gid. */
async function resolveGroup(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const line = (await readFile('/etc/group', 'utf8')).split('\n').find((l) => l.split(':')[0] === group);
  const gid = line?.split(':')[2];
  if (gid === undefined) throw new CodedError(ErrorCode.InvalidArgument, `--group ${group}: no such group`);
  return Number(gid);
}
