// The media types a plugin image is made of, and what a manifest must hold.
// Docker's plugin push writes schema 2 manifests whose config is the plugin's
// config.json (application/vnd.docker.plugin.v1+json); an OCI manifest with
// that config type is taken as well.
import { ErrorCode, ImageError } from './errors.js';

export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER_MANIFEST_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const PLUGIN_CONFIG = 'application/vnd.docker.plugin.v1+json';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
export const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

/** What a manifest GET asks for: the single-manifest types only. */
export const MANIFEST_TYPES = [DOCKER_MANIFEST, OCI_MANIFEST];
const LAYER_TYPES = new Set([DOCKER_LAYER_GZIP, OCI_LAYER_GZIP, OCI_LAYER]);
const CONTAINER_CONFIGS = new Set(['application/vnd.docker.container.image.v1+json', 'application/vnd.oci.image.config.v1+json']);

export interface BlobDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface PluginManifest {
  mediaType: string;
  config: BlobDescriptor;
  layers: BlobDescriptor[];
}

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

function descriptor(v: unknown, what: string, fail: (why: string) => ImageError): BlobDescriptor {
  const d = v as Partial<BlobDescriptor> | null;
  if (typeof d !== 'object' || d === null) throw fail(`${what} is not a descriptor`);
  if (typeof d.mediaType !== 'string') throw fail(`${what} has no mediaType`);
  if (typeof d.digest !== 'string' || !DIGEST_RE.test(d.digest)) throw fail(`${what} digest ${JSON.stringify(d.digest)} is not sha256:<64 hex>`);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) throw fail(`${what} size ${JSON.stringify(d.size)} is not a byte count`);
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/**
 * The manifest's config and layers, or an error saying why this is not a
 * plugin image plugind can pull. `contentType` is the registry's header,
 * used when the body does not say.
 */
export function parsePluginManifest(body: Buffer, contentType: string, input: string): PluginManifest {
  const fail = (why: string): ImageError => new ImageError(ErrorCode.InvalidArgument, `${input}: ${why}`);
  let doc: { schemaVersion?: unknown; mediaType?: unknown; config?: unknown; layers?: unknown };
  try {
    doc = JSON.parse(body.toString('utf8')) as typeof doc;
  } catch (err) {
    throw fail(`the manifest is not JSON: ${(err as Error).message}`);
  }
  const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : contentType.split(';')[0]?.trim() ?? '';
  if (mediaType === DOCKER_MANIFEST_LIST || mediaType === OCI_INDEX) throw fail(`is a multi-platform index (${mediaType}); plugind pulls single plugin manifests`);
  if (doc.schemaVersion !== 2) throw fail(`manifest schemaVersion ${JSON.stringify(doc.schemaVersion)}: want 2`);
  if (mediaType !== DOCKER_MANIFEST && mediaType !== OCI_MANIFEST) throw fail(`manifest media type ${JSON.stringify(mediaType)}: want ${DOCKER_MANIFEST} or ${OCI_MANIFEST}`);
  const config = descriptor(doc.config, 'the config', fail);
  if (config.mediaType !== PLUGIN_CONFIG) {
    const kind = CONTAINER_CONFIGS.has(config.mediaType) ? 'a container image, not a Docker plugin' : 'not a Docker plugin';
    throw fail(`is ${kind}: its config is ${config.mediaType}; plugind pulls plugins, whose config is ${PLUGIN_CONFIG}`);
  }
  if (!Array.isArray(doc.layers)) throw fail('the manifest has no layers list');
  const layers = doc.layers.map((l, i) => descriptor(l, `layer ${i}`, fail));
  for (const [i, l] of layers.entries()) {
    if (!LAYER_TYPES.has(l.mediaType)) throw fail(`layer ${i} (${l.digest}) is ${l.mediaType}; plugind unpacks ${[...LAYER_TYPES].join(', ')}`);
  }
  return { mediaType, config, layers };
}

/** A plugin config's rootfs.diff_ids, one per layer, or an error naming what is off. */
export function diffIds(config: Buffer, layers: number, input: string): string[] {
  const fail = (why: string): ImageError => new ImageError(ErrorCode.InvalidArgument, `${input}: the plugin config ${why}`);
  let doc: { rootfs?: { type?: unknown; diff_ids?: unknown } };
  try {
    doc = JSON.parse(config.toString('utf8')) as typeof doc;
  } catch (err) {
    throw fail(`is not JSON: ${(err as Error).message}`);
  }
  const ids = doc.rootfs?.diff_ids;
  if (!Array.isArray(ids)) throw fail('has no rootfs.diff_ids');
  if (ids.length !== layers) throw fail(`lists ${ids.length} rootfs.diff_ids for ${layers} layers`);
  for (const id of ids) if (typeof id !== 'string' || !DIGEST_RE.test(id)) throw fail(`rootfs.diff_ids has ${JSON.stringify(id)}, not sha256:<64 hex>`);
  return ids as string[];
}
