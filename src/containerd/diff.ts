// The diff service (containerd.services.diff.v1): containerd unpacks a layer
// blob from its content store onto a snapshot's mounts, decompressing it by
// media type, and says the digest of what it applied (the diff id).
import type { CallOptions, Connection } from './connection.js';
import type { Descriptor } from './images.js';
import type { Mount } from './snapshots.js';

const SERVICE = 'containerd.services.diff.v1.Diff';

export class Diff {
  readonly #conn: Connection;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** Unpacks the layer onto the mounts; resolves to the uncompressed layer's descriptor. */
  async apply(layer: Descriptor, mounts: Mount[], options?: CallOptions): Promise<Descriptor> {
    const res = await this.#conn.unary<{ applied: Descriptor | null }>(SERVICE, 'Apply', { diff: layer, mounts }, `apply layer ${layer.digest}`, options);
    const a = res.applied ?? { mediaType: '', digest: '', size: 0 };
    return { mediaType: a.mediaType, digest: a.digest, size: a.size };
  }
}
