// A Docker plugin run from a pulled image: its plugin config, and a snapshot
// of its layers (key: the plugin id) as its rootfs. The snapshot goes with
// the plugin (rm, --rm, a failed create); a re-run or a policy restart gets
// its mounts again from the container record.
import { prepareImageRootfs, removeImageRootfs, type ImageRootfs } from '../images/rootfs.js';
import type { ExecutorContext } from './context.js';
import { refuseTaken } from './create.js';
import { forPlugin } from './errors.js';
import { parsePluginConfig, type PluginConfig } from './plugin-config.js';

/**
 * Prepares the image's snapshot and runs create with it and the image's
 * config; if create fails leaving no plugin of the id that holds it, the
 * snapshot is removed. Not pulled: NOT_FOUND naming `plugind pull REF`.
 */
export async function withImageRootfs<T>(
  ctx: ExecutorContext,
  id: string,
  image: string,
  replace: boolean,
  create: (rootfs: ImageRootfs, config: PluginConfig) => Promise<T>,
): Promise<T> {
  // Refused before the snapshot is touched: a running plugin of the id may be using it.
  let rootfs: ImageRootfs;
  try {
    refuseTaken(ctx, id, replace);
    rootfs = await prepareImageRootfs(ctx.client, image, id);
  } catch (err) {
    throw forPlugin(id, err);
  }
  try {
    return await create(rootfs, parsePluginConfig(rootfs.config, `image ${rootfs.image}: plugin config`));
  } catch (err) {
    // A plugin left listed (not ready in time, say) keeps its snapshot until rm.
    if (ctx.plugins.get(id)?.settings.image === undefined) {
      await removeImageRootfs(ctx.client, rootfs.snapshotter, id).catch((e: Error) => ctx.log.warn({ plugin: id, err: e }, 'rootfs snapshot not removed'));
    }
    throw forPlugin(id, err);
  }
}
