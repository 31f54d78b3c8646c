// A plugin's rootfs from a pulled image: an active snapshot of its own (key =
// plugin id, as containerd's Go client names a container's snapshot) on the
// image's top committed layer. The executor calls these: prepare at create,
// mounts again (Snapshots.Mounts) before every later task create of the same container (a
// re-run, a restart policy run), remove at rm. The container record names the
// snapshot (snapshotter, snapshot_key), which keeps it from GC; a lease (ten
// minutes) covers the moment between Prepare and the record's creation, and
// an existing snapshot reused by a new record is added to it.
import { randomBytes } from 'node:crypto';
import { isAlreadyExists, isNotFound, type ContainerdClient, type Mount } from '../containerd/index.js';
import { ignoreNotFound } from '../common/errors.js';
import { MAX_PLUGIN_CONFIG_BYTES } from '../common/limits.js';
import { ErrorCode, ImageError } from './errors.js';
import { IMAGE_LABELS } from './pull.js';
import { parseReference } from './reference.js';

export const DEFAULT_SNAPSHOTTER = 'overlayfs';
// Long enough for a create to reach Containers.Create; one left by a plugind killed in between expires.
const ROOTFS_LEASE_MS = 10 * 60_000;

export interface ImageRootfs {
  /** The image record's name (the normalized reference): the container's `image`. */
  image: string;
  /** The plugin config blob (application/vnd.docker.plugin.v1+json), as pulled. */
  config: string;
  snapshotter: string;
  snapshotKey: string;
  /** For CreateTaskRequest.rootfs; the spec's root.path is then "rootfs". */
  mounts: Mount[];
}

// A plugin's rootfs leases carry its id in this label; their own ids are
// new each time, so a new one can hold the snapshot before the old goes.
const LEASE_LABEL = 'io.plugind.plugin';

async function rootfsLeases(c: ContainerdClient, pluginId: string): Promise<string[]> {
  return (await c.leases.list([`labels."${LEASE_LABEL}"=="${pluginId}"`])).map((l) => l.id);
}

/**
 * The image's config and a snapshot for the plugin, prepared unless one on
 * the same image is there already (a create retried after a failure after
 * Prepare). One on another image is replaced: call it only when no
 * container of this id uses its snapshot (a stopped one being replaced has
 * been removed first).
 */
export async function prepareImageRootfs(c: ContainerdClient, input: string, pluginId: string): Promise<ImageRootfs> {
  const ref = parseReference(input);
  let record;
  try {
    record = await c.images.get(ref.name);
  } catch (err) {
    if (isNotFound(err)) throw new ImageError(ErrorCode.NotFound, `image ${input} is not pulled (plugind pull ${input})`, { cause: err });
    throw err;
  }
  const chain = record.labels[IMAGE_LABELS.chainId];
  const configDigest = record.labels[IMAGE_LABELS.config];
  const snapshotter = record.labels[IMAGE_LABELS.snapshotter] ?? DEFAULT_SNAPSHOTTER;
  if (!chain || !configDigest) throw new ImageError(ErrorCode.FailedPrecondition, `image ${ref.name} was not pulled by plugind (no ${IMAGE_LABELS.chainId} label): pull it again`);
  const config = (await c.content.readAll(configDigest, { maxBytes: MAX_PLUGIN_CONFIG_BYTES })).toString('utf8');
  const key = pluginId;
  // The new lease holds the snapshot before older ones go: at no moment is
  // it held by nothing (a replaced record's container is deleted after this).
  const older = await rootfsLeases(c, pluginId);
  const lease = `plugind-rootfs-${randomBytes(8).toString('hex')}`;
  await c.leases.create(lease, { expiresInMs: ROOTFS_LEASE_MS, labels: { [LEASE_LABEL]: pluginId } });
  let mounts: Mount[];
  try {
    mounts = await c.snapshots.prepare(snapshotter, key, chain, { lease });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    const info = await c.snapshots.stat(snapshotter, key);
    if (info.kind === 'ACTIVE' && info.parent === chain) {
      // The new lease keeps it while the record that names it is replaced
      // (a stopped plugin run again): between that record's delete and the
      // new one's create, nothing else does, and GC may run.
      await c.leases.addSnapshot(lease, snapshotter, key);
      mounts = await c.snapshots.mounts(snapshotter, key);
    } else {
      await c.snapshots.remove(snapshotter, key);
      mounts = await c.snapshots.prepare(snapshotter, key, chain, { lease });
    }
  }
  for (const old of older) await c.leases.delete(old).catch(ignoreNotFound);
  return { image: ref.name, config, snapshotter, snapshotKey: key, mounts };
}

/** Removes a plugin's snapshot and its lease; what is gone already is no failure. */
export async function removeImageRootfs(c: ContainerdClient, snapshotter: string, key: string): Promise<void> {
  await c.snapshots.remove(snapshotter, key).catch(ignoreNotFound);
  for (const lease of await rootfsLeases(c, key)) await c.leases.delete(lease).catch(ignoreNotFound);
}
