// Snapshots (containerd.services.snapshots.v1) of one snapshotter: committed
// layers named by chain id, and active snapshots on top of them whose
// mounts are a plugin's rootfs.
import type { CallOptions, Connection } from './connection.js';
import { fromGrpcError } from './errors.js';
import { toDate, type Timestamp } from './wire.js';

const SERVICE = 'containerd.services.snapshots.v1.Snapshots';

export interface Mount {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

export type SnapshotKind = 'UNKNOWN' | 'VIEW' | 'ACTIVE' | 'COMMITTED';

export interface SnapshotInfo {
  name: string;
  parent: string;
  kind: SnapshotKind;
  labels: Record<string, string>;
  createdAt?: Date;
}

interface WireInfo {
  name: string;
  parent: string;
  kind: SnapshotKind;
  labels: Record<string, string>;
  createdAt: Timestamp | null;
}

function infoFromWire(i: WireInfo): SnapshotInfo {
  const out: SnapshotInfo = { name: i.name, parent: i.parent, kind: i.kind, labels: i.labels };
  const createdAt = toDate(i.createdAt);
  if (createdAt) out.createdAt = createdAt;
  return out;
}

function mountsFromWire(mounts: Mount[]): Mount[] {
  return mounts.map((m) => ({ type: m.type, source: m.source, options: m.options, ...(m.target ? { target: m.target } : {}) }));
}

export class Snapshots {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** An active snapshot on parent (a committed name, or '' for an empty one); its mounts. */
  async prepare(snapshotter: string, key: string, parent: string, opts: { labels?: Record<string, string> } & CallOptions = {}): Promise<Mount[]> {
    const { labels = {}, ...options } = opts;
    const res = await this.#conn.unary<{ mounts: Mount[] }>(SERVICE, 'Prepare', { snapshotter, key, parent, labels }, `prepare snapshot ${key}`, options);
    return mountsFromWire(res.mounts);
  }

  async mounts(snapshotter: string, key: string, options?: CallOptions): Promise<Mount[]> {
    const res = await this.#conn.unary<{ mounts: Mount[] }>(SERVICE, 'Mounts', { snapshotter, key }, `mounts of snapshot ${key}`, options);
    return mountsFromWire(res.mounts);
  }

  /** Makes the active snapshot key the committed snapshot name (key is gone after). */
  async commit(snapshotter: string, name: string, key: string, opts: { labels?: Record<string, string> } & CallOptions = {}): Promise<void> {
    const { labels = {}, ...options } = opts;
    await this.#conn.unary(SERVICE, 'Commit', { snapshotter, name, key, labels }, `commit snapshot ${key} as ${name}`, options);
  }

  async remove(snapshotter: string, key: string, options?: CallOptions): Promise<void> {
    await this.#conn.unary(SERVICE, 'Remove', { snapshotter, key }, `remove snapshot ${key}`, options);
  }

  async stat(snapshotter: string, key: string, options?: CallOptions): Promise<SnapshotInfo> {
    const res = await this.#conn.unary<{ info: WireInfo }>(SERVICE, 'Stat', { snapshotter, key }, `snapshot ${key}`, options);
    return infoFromWire(res.info);
  }

  /** Every snapshot of the snapshotter in the namespace. */
  async list(snapshotter: string, filters: string[] = []): Promise<SnapshotInfo[]> {
    const what = `list ${snapshotter} snapshots`;
    const call = this.#conn.serverStream(SERVICE, 'List', { snapshotter, filters }, what, { waitForReady: true, timeoutMs: this.#conn.timeoutMs });
    const out: SnapshotInfo[] = [];
    try {
      for await (const m of call as AsyncIterable<{ info: WireInfo[] }>) out.push(...m.info.map(infoFromWire));
    } catch (err) {
      throw fromGrpcError(err, what, this.#conn.timeoutMs);
    }
    return out;
  }
}
