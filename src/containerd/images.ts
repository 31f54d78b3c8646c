// Image records (containerd.services.images.v1): a name and the descriptor
// of its manifest. Deleting one with sync runs the GC before answering.
import type { CallOptions, Connection } from './connection.js';
import { toDate, type Timestamp } from './wire.js';

const SERVICE = 'containerd.services.images.v1.Images';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ImageRecord {
  name: string;
  labels: Record<string, string>;
  target: Descriptor;
  createdAt?: Date;
  updatedAt?: Date;
}

interface WireImage {
  name: string;
  labels: Record<string, string>;
  target: Descriptor | null;
  createdAt: Timestamp | null;
  updatedAt: Timestamp | null;
}

function fromWire(i: WireImage): ImageRecord {
  const t = i.target ?? { mediaType: '', digest: '', size: 0 };
  const out: ImageRecord = { name: i.name, labels: i.labels, target: { mediaType: t.mediaType, digest: t.digest, size: t.size } };
  const createdAt = toDate(i.createdAt);
  if (createdAt) out.createdAt = createdAt;
  const updatedAt = toDate(i.updatedAt);
  if (updatedAt) out.updatedAt = updatedAt;
  return out;
}

export class Images {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  async get(name: string, options?: CallOptions): Promise<ImageRecord> {
    const res = await this.#conn.unary<{ image: WireImage }>(SERVICE, 'Get', { name }, `get image ${name}`, options);
    return fromWire(res.image);
  }

  async list(filters: string[] = [], options?: CallOptions): Promise<ImageRecord[]> {
    const res = await this.#conn.unary<{ images: WireImage[] }>(SERVICE, 'List', { filters }, 'list images', options);
    return res.images.map(fromWire);
  }

  async create(image: { name: string; labels?: Record<string, string>; target: Descriptor }, options?: CallOptions): Promise<ImageRecord> {
    const res = await this.#conn.unary<{ image: WireImage }>(SERVICE, 'Create', { image }, `create image ${image.name}`, options);
    return fromWire(res.image);
  }

  /** Points an existing name at another manifest (a tag pulled again), labels too. */
  async update(image: { name: string; labels?: Record<string, string>; target: Descriptor }, options?: CallOptions): Promise<ImageRecord> {
    const res = await this.#conn.unary<{ image: WireImage }>(SERVICE, 'Update', { image, updateMask: { paths: [] } }, `update image ${image.name}`, options);
    return fromWire(res.image);
  }

  /** With sync, containerd's GC has run when this resolves: what only this image kept is gone. */
  async delete(name: string, opts: { sync?: boolean } & CallOptions = {}): Promise<void> {
    const { sync = false, ...options } = opts;
    await this.#conn.unary(SERVICE, 'Delete', { name, sync }, `delete image ${name}`, options);
  }
}
