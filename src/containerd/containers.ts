// Container records (containerd.services.containers.v1): metadata only. A
// container has no process until a task is created for it.
import type { Any } from './any.js';
import type { CallOptions, Connection } from './connection.js';
import { toDate, type Timestamp } from './wire.js';

const SERVICE = 'containerd.services.containers.v1.Containers';

export interface Container {
  id: string;
  labels: Record<string, string>;
  /** The image it runs from, its rootfs snapshot: empty for a directory rootfs. */
  image: string;
  snapshotter: string;
  snapshotKey: string;
  runtime: { name: string; options?: Any };
  spec?: Any;
  createdAt?: Date;
  updatedAt?: Date;
}

export interface NewContainer {
  id: string;
  labels?: Record<string, string>;
  /** Set as containerd's Go client does for a container from an image: GC keeps the snapshot while the record exists. */
  image?: string;
  snapshotter?: string;
  snapshotKey?: string;
  runtime: { name: string; options?: Any };
  spec: Any;
}

interface WireContainer {
  id: string;
  labels: Record<string, string>;
  image: string;
  snapshotter: string;
  snapshotKey: string;
  runtime: { name: string; options: Any | null } | null;
  spec: Any | null;
  createdAt: Timestamp | null;
  updatedAt: Timestamp | null;
}

function fromWire(c: WireContainer): Container {
  const out: Container = { id: c.id, labels: c.labels, image: c.image, snapshotter: c.snapshotter, snapshotKey: c.snapshotKey, runtime: { name: c.runtime?.name ?? '' } };
  if (c.runtime?.options) out.runtime.options = c.runtime.options;
  if (c.spec) out.spec = c.spec;
  const createdAt = toDate(c.createdAt);
  if (createdAt) out.createdAt = createdAt;
  const updatedAt = toDate(c.updatedAt);
  if (updatedAt) out.updatedAt = updatedAt;
  return out;
}

export class Containers {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  async create(container: NewContainer, options?: CallOptions): Promise<Container> {
    const res = await this.#conn.unary<{ container: WireContainer }>(SERVICE, 'Create', { container }, `create container ${container.id}`, options);
    return fromWire(res.container);
  }

  async get(id: string, options?: CallOptions): Promise<Container> {
    const res = await this.#conn.unary<{ container: WireContainer }>(SERVICE, 'Get', { id }, `get container ${id}`, options);
    return fromWire(res.container);
  }

  /** Filters use containerd's syntax, e.g. `labels."io.plugind.managed"==1`; entries are ORed. */
  async list(filters: string[] = [], options?: CallOptions): Promise<Container[]> {
    const res = await this.#conn.unary<{ containers: WireContainer[] }>(SERVICE, 'List', { filters }, 'list containers', options);
    return res.containers.map(fromWire);
  }

  /**
   * Sets (or, with an empty value, removes) labels without touching anything
   * else: one field path per label, so concurrent updates of other labels
   * are not overwritten.
   */
  async setLabels(id: string, labels: Record<string, string>, options?: CallOptions): Promise<Container> {
    const paths = Object.keys(labels).map((k) => `labels.${k}`);
    const res = await this.#conn.unary<{ container: WireContainer }>(
      SERVICE,
      'Update',
      { container: { id, labels }, updateMask: { paths } },
      `update container ${id}`,
      options,
    );
    return fromWire(res.container);
  }

  /**
   * Replaces the container's OCI spec and nothing else (update mask
   * `spec`). A running task keeps the spec it was created with; the next
   * task gets this one.
   */
  async setSpec(id: string, spec: Any, options?: CallOptions): Promise<Container> {
    const res = await this.#conn.unary<{ container: WireContainer }>(
      SERVICE,
      'Update',
      { container: { id, spec }, updateMask: { paths: ['spec'] } },
      `update container ${id} spec`,
      options,
    );
    return fromWire(res.container);
  }

  async delete(id: string, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'Delete', { id }, `delete container ${id}`, options);
  }
}
