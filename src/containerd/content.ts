// The content store (containerd.services.content.v1): blobs by digest. A
// write is one bidirectional stream per blob; GC keeps a blob while an
// image, a lease or another blob's gc.ref label reaches it.
import type * as grpc from '@grpc/grpc-js';
import type { CallOptions, Connection } from './connection.js';
import { ContainerdError, ErrorCode, fromGrpcError } from './errors.js';
import { toDate, type Timestamp } from './wire.js';

const SERVICE = 'containerd.services.content.v1.Content';
// WriteAction by number: the message codec verifies enums as numbers.
const WRITE = 1;
const COMMIT = 2;

export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
  createdAt?: Date;
}

interface WireInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
  createdAt: Timestamp | null;
}

function infoFromWire(i: WireInfo): ContentInfo {
  const out: ContentInfo = { digest: i.digest, size: i.size, labels: i.labels };
  const createdAt = toDate(i.createdAt);
  if (createdAt) out.createdAt = createdAt;
  return out;
}

export interface WriteOptions {
  /** The digest and size the blob must have; containerd checks them at commit. */
  expected: string;
  total: number;
  lease?: string;
}

/**
 * One blob being written. Chunks go out without waiting for containerd's
 * answer to each (it sends one per request); a failure of the stream fails
 * the next call. commit() or abort() ends it.
 */
export class ContentWriter {
  readonly ref: string;
  readonly #call: grpc.ClientDuplexStream<object, Record<string, unknown>>;
  readonly #o: WriteOptions;
  readonly #what: string;
  // One resolver per request sent, in order: containerd answers each.
  readonly #waiting: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  #failed: ContainerdError | undefined;
  #offset = 0;
  #ended = false;

  constructor(conn: Connection, ref: string, options: WriteOptions) {
    this.ref = ref;
    this.#o = options;
    this.#what = `write content ${options.expected}`;
    this.#call = conn.duplexStream(SERVICE, 'Write', this.#what, options.lease ? { lease: options.lease } : {});
    this.#call.on('data', () => this.#waiting.shift()?.resolve());
    this.#call.on('error', (err: Error) => {
      this.#failed ??= fromGrpcError(err, this.#what);
      for (const w of this.#waiting.splice(0)) w.reject(this.#failed);
    });
    this.#call.on('end', () => {
      const err = this.#failed ?? new ContainerdError(ErrorCode.Unavailable, `${this.#what}: the stream ended early`);
      for (const w of this.#waiting.splice(0)) w.reject(err);
    });
  }

  get offset(): number {
    return this.#offset;
  }

  async #drained(): Promise<void> {
    if (this.#failed) throw this.#failed;
    await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => {
        this.#call.off('error', onError);
        resolve();
      };
      const onError = (err: Error): void => {
        this.#call.off('drain', onDrain);
        reject(fromGrpcError(err, this.#what));
      };
      this.#call.once('drain', onDrain);
      this.#call.once('error', onError);
    });
  }

  /** Sends one chunk at the current offset; resolves when it may take the next. */
  async write(data: Uint8Array): Promise<void> {
    if (this.#failed) throw this.#failed;
    const request = { action: WRITE, ref: this.ref, offset: this.#offset, total: this.#o.total, data };
    this.#offset += data.length;
    const answered = this.#expectAnswer();
    answered.catch(() => {});
    if (!this.#call.write(request)) await this.#drained();
    if (this.#failed) throw this.#failed;
  }

  #expectAnswer(): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    return new Promise<void>((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** Commits what was written as the expected blob, with these labels. */
  async commit(labels: Record<string, string> = {}): Promise<void> {
    if (this.#failed) throw this.#failed;
    const answered = this.#expectAnswer();
    this.#call.write({ action: COMMIT, ref: this.ref, offset: this.#offset, total: this.#o.total, expected: this.#o.expected, labels });
    try {
      await answered;
    } finally {
      this.#end();
    }
  }

  /** Gives the stream up; the caller aborts the ingest (Content.abort) if it wants it gone. */
  cancel(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#call.cancel();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#call.end();
  }
}

export class Content {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  async info(digest: string, options?: CallOptions): Promise<ContentInfo> {
    const res = await this.#conn.unary<{ info: WireInfo }>(SERVICE, 'Info', { digest }, `content ${digest}`, options);
    return infoFromWire(res.info);
  }

  /** Sets labels on a blob; the others stay as they are. */
  async setLabels(digest: string, labels: Record<string, string>, options?: CallOptions): Promise<ContentInfo> {
    const paths = Object.keys(labels).map((k) => `labels.${k}`);
    const res = await this.#conn.unary<{ info: WireInfo }>(SERVICE, 'Update', { info: { digest, labels }, updateMask: { paths } }, `update content ${digest}`, options);
    return infoFromWire(res.info);
  }

  async delete(digest: string, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'Delete', { digest }, `delete content ${digest}`, options);
  }

  /** Opens a write of one blob under the ingest ref (see ContentWriter). */
  writer(ref: string, options: WriteOptions): ContentWriter {
    return new ContentWriter(this.#conn, ref, options);
  }

  /** Drops an unfinished write and what it had written. */
  async abort(ref: string, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'Abort', { ref }, `abort content write ${ref}`, options);
  }

  /** A whole blob, read into memory: for manifests and configs, which are small. */
  async readAll(digest: string, options: { maxBytes: number; timeoutMs?: number }): Promise<Buffer> {
    const what = `read content ${digest}`;
    const call = this.#conn.serverStream(SERVICE, 'Read', { digest, offset: 0, size: 0 }, what, { waitForReady: true, timeoutMs: options.timeoutMs ?? 10_000 });
    const chunks: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const m of call as AsyncIterable<{ data: Uint8Array }>) {
        bytes += m.data.length;
        if (bytes > options.maxBytes) {
          call.cancel();
          throw new ContainerdError(ErrorCode.FailedPrecondition, `${what}: more than ${options.maxBytes} bytes`);
        }
        chunks.push(Buffer.from(m.data));
      }
    } catch (err) {
      throw fromGrpcError(err, what);
    }
    return Buffer.concat(chunks);
  }
}
