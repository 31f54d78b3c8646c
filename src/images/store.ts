// Plugin images as `plugind serve` keeps them: in containerd's own content
// store, images service and snapshotter, in plugind's namespace. Pull, list
// (with the plugins that use each image) and remove; the GC frees what no
// image, plugin or pull holds any more.
import { type ContainerdClient, type ImageRecord } from '../containerd/index.js';
import { isNotFound } from '../common/errors.js';
import { ErrorCode, ImageError } from './errors.js';
import { IMAGE_LABELS, pullImage, type PullProgress } from './pull.js';
import { parseReference } from './reference.js';
import type { Credentials } from './registry.js';
import { DEFAULT_SNAPSHOTTER } from './rootfs.js';

export interface ImageSummary {
  /** The normalized reference, e.g. 127.0.0.1:5000/plugins/echo:1. */
  name: string;
  /** The manifest's digest. */
  digest: string;
  mediaType: string;
  /** Manifest, config and (compressed) layers, in bytes. */
  size: number;
  createdAt?: Date;
  /** Ids of the plugins whose container runs from it. */
  plugins: string[];
}

export interface PullRequestOptions {
  insecure?: boolean;
  credentials?: Credentials;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
}

export interface ImageStoreOptions {
  /** A client on plugind's namespace. */
  client: ContainerdClient;
  /** Default overlayfs (containerd's default on Linux). */
  snapshotter?: string;
}

function summary(r: ImageRecord, plugins: string[]): ImageSummary {
  const s: ImageSummary = { name: r.name, digest: r.target.digest, mediaType: r.target.mediaType, size: Number(r.labels[IMAGE_LABELS.size] ?? r.target.size), plugins };
  if (r.createdAt) s.createdAt = r.createdAt;
  return s;
}

export class ImageStore {
  readonly snapshotter: string;
  readonly #c: ContainerdClient;
  // Pulls run one at a time: two writers of one blob would meet on its ingest ref.
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: ImageStoreOptions) {
    this.#c = options.client;
    this.snapshotter = options.snapshotter ?? DEFAULT_SNAPSHOTTER;
  }

  /** Pulls the reference (see pullImage); resolves to the image as recorded. */
  pull(input: string, options: PullRequestOptions = {}): Promise<ImageSummary> {
    const ref = parseReference(input);
    const run = async (): Promise<ImageSummary> => {
      const record = await pullImage(this.#c, ref, { ...options, snapshotter: this.snapshotter });
      return summary(record, (await this.#users()).get(record.name) ?? []);
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }

  async list(): Promise<ImageSummary[]> {
    const [records, users] = await Promise.all([this.#c.images.list(), this.#users()]);
    return records.map((r) => summary(r, users.get(r.name) ?? [])).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The image by the reference, as `images` shows it. */
  async get(input: string): Promise<ImageSummary> {
    const name = parseReference(input).name;
    const [record, users] = await Promise.all([this.#record(input, name), this.#users()]);
    return summary(record, users.get(name) ?? []);
  }

  /**
   * Deletes the image record unless a plugin uses it (named in the error),
   * then lets containerd's GC run before answering: blobs and snapshots
   * that only this image held are gone when it resolves.
   */
  async remove(input: string): Promise<void> {
    const name = parseReference(input).name;
    await this.#record(input, name);
    const users = (await this.#users()).get(name) ?? [];
    if (users.length > 0) {
      const running = new Set((await this.#c.tasks.list()).filter((t) => t.status === 'running' || t.status === 'paused').map((t) => t.containerId));
      const named = users.map((id) => `${id} (${running.has(id) ? 'running' : 'stopped'})`).join(', ');
      throw new ImageError(ErrorCode.FailedPrecondition, `image ${name} is used by plugin${users.length > 1 ? 's' : ''} ${named}: remove ${users.length > 1 ? 'them' : 'it'} first (plugind rm ID)`);
    }
    try {
      await this.#c.images.delete(name, { sync: true, timeoutMs: 60_000 });
    } catch (err) {
      if (isNotFound(err)) throw new ImageError(ErrorCode.NotFound, `image ${input}: not pulled`, { cause: err });
      throw err;
    }
  }

  async #record(input: string, name: string): Promise<ImageRecord> {
    try {
      return await this.#c.images.get(name);
    } catch (err) {
      if (isNotFound(err)) throw new ImageError(ErrorCode.NotFound, `image ${input}: not pulled (plugind images lists what is)`, { cause: err });
      throw err;
    }
  }

  /** Plugin ids by the image their container runs from. */
  async #users(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const ctr of await this.#c.containers.list()) {
      if (!ctr.image) continue;
      const ids = out.get(ctr.image) ?? [];
      ids.push(ctr.id);
      out.set(ctr.image, ids);
    }
    return out;
  }
}
