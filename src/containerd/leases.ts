// Leases (containerd.services.leases.v1): a call made with a lease id in its
// header (CallOptions.lease) keeps what it creates from GC until the lease
// is deleted, or expires by its containerd.io/gc.expire label.
import type { CallOptions, Connection } from './connection.js';

const SERVICE = 'containerd.services.leases.v1.Leases';

export interface Lease {
  id: string;
  labels: Record<string, string>;
}

export class Leases {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** A lease that containerd drops by itself after expiresInMs, should its owner die first. */
  async create(id: string, opts: { expiresInMs: number; labels?: Record<string, string> } & CallOptions): Promise<Lease> {
    const { expiresInMs, labels = {}, ...options } = opts;
    const all = { ...labels, 'containerd.io/gc.expire': new Date(Date.now() + expiresInMs).toISOString().replace(/\.\d+Z$/, 'Z') };
    const res = await this.#conn.unary<{ lease: Lease }>(SERVICE, 'Create', { id, labels: all }, `create lease ${id}`, options);
    return { id: res.lease.id, labels: res.lease.labels };
  }

  /** With sync, containerd's GC has run when this resolves. */
  async delete(id: string, opts: { sync?: boolean } & CallOptions = {}): Promise<void> {
    const { sync = false, ...options } = opts;
    await this.#conn.unary(SERVICE, 'Delete', { id, sync }, `delete lease ${id}`, options);
  }

  /** The lease keeps this snapshot too (one that exists already, made under no lease or another). */
  async addSnapshot(id: string, snapshotter: string, key: string, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'AddResource', { id, resource: { id: key, type: `snapshots/${snapshotter}` } }, `add snapshot ${key} to lease ${id}`, options);
  }

  async list(filters: string[] = [], options?: CallOptions): Promise<Lease[]> {
    const res = await this.#conn.unary<{ leases: Lease[] }>(SERVICE, 'List', { filters }, 'list leases', options);
    return res.leases.map((l) => ({ id: l.id, labels: l.labels }));
  }
}
