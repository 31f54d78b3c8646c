// A pull into containerd's own store, the way containerd's client and nerdctl
// do it: under a lease, blobs written to the content store with their digest
// and size checked as they stream, layers unpacked by the diff service onto
// snapshots committed by chain id, GC labels linking manifest → config and
// layers → snapshots, then the image record. Whatever is in the store
// already (a blob, a committed layer) is not fetched or unpacked again.
// A failed pull deletes its lease with a synchronous GC: nothing it made stays.
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isAlreadyExists, isNotFound, type ContainerdClient, type Descriptor, type ImageRecord } from '../containerd/index.js';
import { errorCode } from '../common/errors.js';
import { MAX_PLUGIN_CONFIG_BYTES } from '../common/limits.js';
import { parsePluginConfig } from '../executor/plugin-config.js';
import { ErrorCode, ImageError } from './errors.js';
import { MANIFEST_TYPES, diffIds, parsePluginManifest, type BlobDescriptor } from './media.js';
import type { Reference } from './reference.js';
import { RegistryClient, readBody, type RegistryOptions } from './registry.js';

/** Image record labels plugind reads back (its own, under io.plugind.*). */
export const IMAGE_LABELS = {
  config: 'io.plugind.config',
  chainId: 'io.plugind.chain-id',
  size: 'io.plugind.size',
  snapshotter: 'io.plugind.snapshotter',
} as const;

export type PullStatus = 'downloading' | 'downloaded' | 'exists' | 'unpacking' | 'unpacked';

export interface PullProgress {
  digest: string;
  kind: 'manifest' | 'config' | 'layer';
  status: PullStatus;
  done: number;
  total: number;
}

export interface PullOptions extends RegistryOptions {
  snapshotter: string;
  onProgress?: (p: PullProgress) => void;
  signal?: AbortSignal;
}

const MAX_MANIFEST = 4 << 20;
// Content.Write messages: big enough to be few, well under gRPC's 16 MiB.
const WRITE_CHUNK = 1 << 20;
const PROGRESS_EVERY_MS = 100;
// A lease its plugind forgot (killed mid-pull) is dropped by containerd after this.
const LEASE_MS = 60 * 60_000;
const APPLY_TIMEOUT_MS = 10 * 60_000;

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The chain ids of a layer stack (OCI image spec): the names its committed snapshots get. */
export function chainIds(diffs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffs) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1] as string} ${d}`));
  return out;
}

/** The GC labels that keep a manifest's config and layers while the manifest is kept. */
export function manifestGcLabels(m: { config: BlobDescriptor; layers: BlobDescriptor[] }): Record<string, string> {
  const labels: Record<string, string> = { 'containerd.io/gc.ref.content.config': m.config.digest };
  m.layers.forEach((l, i) => (labels[`containerd.io/gc.ref.content.l.${i}`] = l.digest));
  return labels;
}

function mismatch(input: string, what: string): ImageError {
  return new ImageError(ErrorCode.FailedPrecondition, `${input}: ${what}; nothing was stored`);
}

function checkAborted(signal: AbortSignal | undefined, input: string): void {
  if (signal?.aborted) throw new ImageError(ErrorCode.Canceled, `${input}: pull canceled`);
}

class Puller {
  readonly #c: ContainerdClient;
  readonly #ref: Reference;
  readonly #o: PullOptions;
  readonly #registry: RegistryClient;
  readonly #lease: string;

  constructor(c: ContainerdClient, ref: Reference, options: PullOptions, lease: string) {
    this.#c = c;
    this.#ref = ref;
    this.#o = options;
    this.#registry = new RegistryClient(ref, options);
    this.#lease = lease;
  }

  #progress(p: PullProgress): void {
    this.#o.onProgress?.(p);
  }

  async #has(digest: string): Promise<boolean> {
    try {
      await this.#c.content.info(digest);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async run(): Promise<ImageRecord> {
    const input = this.#ref.input;
    const res = await this.#registry.manifest(MANIFEST_TYPES);
    const body = await readBody(res, MAX_MANIFEST).catch((err: unknown) => {
      throw new ImageError(ErrorCode.FailedPrecondition, `${input}: reading the manifest: ${(err as Error).message}`, { cause: err });
    });
    const digest = sha256(body);
    if (this.#ref.digest && digest !== this.#ref.digest) throw mismatch(input, `the manifest sent hashes to ${digest}, not the ${this.#ref.digest} asked for`);
    const said = res.headers['docker-content-digest'];
    if (typeof said === 'string' && said !== '' && said !== digest) throw mismatch(input, `the registry says the manifest is ${said}, but what it sent hashes to ${digest}`);
    const manifest = parsePluginManifest(body, String(res.headers['content-type'] ?? ''), input);
    if (manifest.layers.length === 0) throw new ImageError(ErrorCode.InvalidArgument, `${input}: the manifest has no layers (a plugin needs a rootfs)`);
    const target: Descriptor = { mediaType: manifest.mediaType, digest, size: body.length };
    this.#progress({ digest, kind: 'manifest', status: 'downloaded', done: body.length, total: body.length });

    const config = await this.#config(manifest.config);
    const diffs = diffIds(config.bytes, manifest.layers.length, input);
    // Refused here, with nothing stored, rather than at the first run.
    parsePluginConfig(config.bytes, `${input}: plugin config`);
    for (const layer of manifest.layers) await this.#layer(layer);
    const chains = chainIds(diffs);
    await this.#unpack(manifest.layers, diffs, chains);
    const top = chains[chains.length - 1] as string;

    // Labels link what GC must keep: manifest → config and layers, config → snapshots.
    const configLabels = { [`containerd.io/gc.ref.snapshot.${this.#o.snapshotter}`]: top };
    await this.#storeSmall(manifest.config, config.bytes, config.stored, configLabels);
    await this.#storeSmall(target, body, await this.#has(digest), manifestGcLabels(manifest));
    const size = body.length + manifest.config.size + manifest.layers.reduce((n, l) => n + l.size, 0);
    const record = {
      name: this.#ref.name,
      target,
      labels: { [IMAGE_LABELS.config]: manifest.config.digest, [IMAGE_LABELS.chainId]: top, [IMAGE_LABELS.size]: String(size), [IMAGE_LABELS.snapshotter]: this.#o.snapshotter },
    };
    try {
      return await this.#c.images.create(record);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      return await this.#c.images.update(record);
    }
  }

  /** The config blob's bytes, from the store when it is there, else from the registry (verified). */
  async #config(d: BlobDescriptor): Promise<{ bytes: Buffer; stored: boolean }> {
    const input = this.#ref.input;
    if (d.size > MAX_PLUGIN_CONFIG_BYTES) throw new ImageError(ErrorCode.InvalidArgument, `${input}: the config is ${d.size} bytes; at most ${MAX_PLUGIN_CONFIG_BYTES}`);
    if (await this.#has(d.digest)) {
      this.#progress({ digest: d.digest, kind: 'config', status: 'exists', done: d.size, total: d.size });
      return { bytes: await this.#c.content.readAll(d.digest, { maxBytes: MAX_PLUGIN_CONFIG_BYTES }), stored: true };
    }
    const res = await this.#registry.blob(d.digest);
    const bytes = await readBody(res, d.size).catch((err: unknown) => {
      throw mismatch(input, `config ${d.digest}: ${(err as Error).message.replace(/^response larger than/, 'the registry sent more than')}`);
    });
    if (bytes.length !== d.size) throw mismatch(input, `config ${d.digest}: the registry sent ${bytes.length} bytes, the manifest says ${d.size}`);
    const got = sha256(bytes);
    if (got !== d.digest) throw mismatch(input, `config ${d.digest}: what the registry sent hashes to ${got}`);
    this.#progress({ digest: d.digest, kind: 'config', status: 'downloaded', done: d.size, total: d.size });
    return { bytes, stored: false };
  }

  /** A small blob we hold in memory: written when missing, labelled either way. */
  async #storeSmall(d: Descriptor, bytes: Buffer, stored: boolean, labels: Record<string, string>): Promise<void> {
    if (stored) {
      await this.#c.content.setLabels(d.digest, labels, { lease: this.#lease });
      return;
    }
    const ref = `plugind-pull-${d.digest}`;
    const w = this.#c.content.writer(ref, { expected: d.digest, total: d.size, lease: this.#lease });
    try {
      await w.write(bytes);
      await w.commit(labels);
    } catch (err) {
      w.cancel();
      if (!isAlreadyExists(err)) throw err;
      await this.#c.content.setLabels(d.digest, labels, { lease: this.#lease });
    }
  }

  /** A layer blob streamed from the registry into the content store, its size and digest checked on the way. */
  async #layer(d: BlobDescriptor): Promise<void> {
    const input = this.#ref.input;
    if (await this.#has(d.digest)) {
      this.#progress({ digest: d.digest, kind: 'layer', status: 'exists', done: d.size, total: d.size });
      return;
    }
    checkAborted(this.#o.signal, input);
    const res: IncomingMessage = await this.#registry.blob(d.digest);
    const ref = `plugind-pull-${d.digest}`;
    const w = this.#c.content.writer(ref, { expected: d.digest, total: d.size, lease: this.#lease });
    const hash = createHash('sha256');
    let done = 0;
    let last = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      const data = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await w.write(data);
    };
    try {
      const length = res.headers['content-length'];
      if (length !== undefined && Number(length) !== d.size) throw mismatch(input, `layer ${d.digest}: the registry sends ${length} bytes, the manifest says ${d.size}`);
      this.#progress({ digest: d.digest, kind: 'layer', status: 'downloading', done: 0, total: d.size });
      for await (const chunk of res as AsyncIterable<Buffer>) {
        checkAborted(this.#o.signal, input);
        done += chunk.length;
        if (done > d.size) throw mismatch(input, `layer ${d.digest}: the registry sent more than the ${d.size} bytes the manifest says`);
        hash.update(chunk);
        pending.push(chunk);
        pendingBytes += chunk.length;
        if (pendingBytes >= WRITE_CHUNK) await flush();
        const now = Date.now();
        if (now - last >= PROGRESS_EVERY_MS) {
          last = now;
          this.#progress({ digest: d.digest, kind: 'layer', status: 'downloading', done, total: d.size });
        }
      }
      if (done !== d.size) throw mismatch(input, `layer ${d.digest}: the registry sent ${done} bytes, the manifest says ${d.size}`);
      const got = `sha256:${hash.digest('hex')}`;
      if (got !== d.digest) throw mismatch(input, `layer ${d.digest}: what the registry sent hashes to ${got}`);
      await flush();
      await w.commit();
    } catch (err) {
      res.destroy();
      w.cancel();
      // Written by another pull meanwhile: the blob is there, which is all we want.
      if (isAlreadyExists(err)) return;
      await this.#c.content.abort(ref).catch(() => {});
      if (err instanceof ImageError) throw err;
      throw new ImageError(errorCode(err), `${input}: layer ${d.digest}: ${(err as Error).message}`, { cause: err });
    }
    this.#progress({ digest: d.digest, kind: 'layer', status: 'downloaded', done, total: d.size });
  }

  /** Each layer not yet committed under its chain id: prepared on its parent, applied, checked, committed. */
  async #unpack(layers: BlobDescriptor[], diffs: string[], chains: string[]): Promise<void> {
    const ss = this.#o.snapshotter;
    let parent = '';
    for (const [i, layer] of layers.entries()) {
      const chain = chains[i] as string;
      if (await this.#committed(chain)) {
        this.#progress({ digest: layer.digest, kind: 'layer', status: 'unpacked', done: layer.size, total: layer.size });
        parent = chain;
        continue;
      }
      checkAborted(this.#o.signal, this.#ref.input);
      this.#progress({ digest: layer.digest, kind: 'layer', status: 'unpacking', done: 0, total: layer.size });
      const key = `plugind-extract-${randomUUID()}-${chain}`;
      const mounts = await this.#c.snapshots.prepare(ss, key, parent, { lease: this.#lease });
      try {
        const applied = await this.#c.diff.apply(layer, mounts, { lease: this.#lease, timeoutMs: APPLY_TIMEOUT_MS });
        if (applied.digest !== diffs[i]) {
          throw mismatch(this.#ref.input, `layer ${i} (${layer.digest}) unpacks to ${applied.digest}, but the config's rootfs.diff_ids[${i}] is ${diffs[i] as string}`);
        }
        await this.#c.snapshots.commit(ss, chain, key, { lease: this.#lease });
      } catch (err) {
        await this.#c.snapshots.remove(ss, key).catch(() => {});
        // Committed by another pull meanwhile: the same bytes under the same name.
        if (!isAlreadyExists(err)) throw err;
      }
      this.#progress({ digest: layer.digest, kind: 'layer', status: 'unpacked', done: layer.size, total: layer.size });
      parent = chain;
    }
  }

  async #committed(chain: string): Promise<boolean> {
    try {
      return (await this.#c.snapshots.stat(this.#o.snapshotter, chain)).kind === 'COMMITTED';
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }
}

/**
 * Pulls the plugin image into the client's namespace and records it under
 * the reference's normalized name. On failure the lease goes with a
 * synchronous GC, so neither blobs nor snapshots of this pull stay (what
 * other images hold stays theirs).
 */
export async function pullImage(c: ContainerdClient, ref: Reference, options: PullOptions): Promise<ImageRecord> {
  const lease = `plugind-pull-${randomUUID()}`;
  await c.leases.create(lease, { expiresInMs: LEASE_MS, labels: { 'io.plugind.pull': ref.name } });
  let ok = false;
  try {
    const record = await new Puller(c, ref, options, lease).run();
    ok = true;
    return record;
  } finally {
    await c.leases.delete(lease, { sync: !ok, timeoutMs: 60_000 }).catch(() => {});
  }
}
