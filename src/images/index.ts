// The image side's public surface: references, the registry client, pulls
// into containerd's store, the store `serve` keeps, and plugin rootfs
// snapshots for the executor.
export { ImageError } from './errors.js';
export { parseReference, isLoopback, type Reference } from './reference.js';
export { RegistryClient, type Credentials, type RegistryOptions } from './registry.js';
export { pullImage, chainIds, IMAGE_LABELS, type PullProgress, type PullStatus, type PullOptions } from './pull.js';
export { ImageStore, type ImageSummary, type ImageStoreOptions, type PullRequestOptions } from './store.js';
export { prepareImageRootfs, removeImageRootfs, DEFAULT_SNAPSHOTTER, type ImageRootfs } from './rootfs.js';
export * as media from './media.js';
