// A Docker plugin's part of the lifecycle: the spec and settings made from
// its config (bundle.ts, as moby's InitSpec), and the wait for its socket
// after start, which stops a plugin that does not answer in time and says
// why, quoting its stderr.
import { join } from 'node:path';
import { ErrorCode, type Mount } from '../containerd/index.js';
import { initSpec, pluginPrivileges } from './bundle.js';
import { propagatedDir, runtimeDir } from './bundle-dirs.js';
import { logDir, type ExecutorContext } from './context.js';
import { PluginError } from './errors.js';
import { pluginLogs } from './plugin-logs.js';
import type { PluginConfig } from './plugin-config.js';
import type { Plugin } from './plugin.js';
import { waitReady } from './ready.js';
import { DEFAULT_READY_TIMEOUT_MS, type BundleSettings } from './settings.js';
import type { OciSpec } from './spec.js';
import { stopPlugin } from './stop.js';

/** A plugin that never got ready is asked to stop this long before SIGKILL. */
const NOT_READY_STOP_GRACE_MS = 2_000;
/** How much of a plugin's stderr a failed ready wait quotes. */
const STDERR_TAIL_LINES = 10;

/** A Docker plugin to run: its config, its rootfs, and what `run` adds. */
export interface BundleRun {
  config: PluginConfig;
  /** A bundle's rootfs dir, or the mounts of a snapshot (a pulled image), handed to Tasks.Create. */
  rootfs: string | Mount[];
  /** After `--`: replace the config's Args.Value. */
  args?: string[];
  /** `K=V`, over the config's Env defaults. */
  env?: string[];
  /** Default DEFAULT_READY_TIMEOUT_MS. */
  readyTimeoutMs?: number;
}

/** What `run --image REF` gives: the image must be pulled already. */
export type ImageRun = Omit<BundleRun, 'config' | 'rootfs'> & { image: string };

/** What `run --bundle DIR` gives, before the bundle is read. */
export type BundleDirRun = Omit<BundleRun, 'config' | 'rootfs'> & { dir: string };

/** The spec moby's InitSpec makes of the config, and the settings that keep what the plugin is (its socket, privileges) on its record. */
export function bundleSpec(ctx: ExecutorContext, id: string, run: BundleRun): { spec: OciSpec; bundle: BundleSettings } {
  const { config } = run;
  const spec = initSpec(config, {
    ...(typeof run.rootfs === 'string' ? { rootfs: run.rootfs } : { rootfsMounts: run.rootfs }),
    runtimeDir: runtimeDir(ctx, id),
    propagatedRoot: propagatedDir(ctx, id),
    args: run.args ?? [],
    env: run.env ?? [],
    id,
    namespace: ctx.client.namespace,
  });
  const bundle: BundleSettings = {
    socket: config.Interface.Socket,
    types: config.Interface.Types,
    propagatedMount: config.PropagatedMount,
    readyTimeoutMs: run.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
    privileges: pluginPrivileges(config),
  };
  return { spec, bundle };
}

/** Waits for a Docker plugin's socket; one that does not answer in time is stopped, and the caller told why. */
export async function untilReady(ctx: ExecutorContext, p: Plugin, b: BundleSettings): Promise<void> {
  const { id } = p;
  const socket = join(runtimeDir(ctx, id), b.socket);
  const r = await waitReady(p, socket, b.readyTimeoutMs);
  if (r.ready) return;
  const seconds = `${b.readyTimeoutMs / 1000} s`;
  if (r.why === 'timeout') {
    ctx.log.warn({ plugin: id, socket, err: r.lastError }, 'plugin not ready in time; stopping it');
    await stopPlugin(ctx, p, NOT_READY_STOP_GRACE_MS).catch((err: Error) => ctx.log.warn({ plugin: id, err }, 'stopping a plugin that was not ready failed'));
  }
  const exit = await p.exited;
  // Reaped: its output is all in the log files.
  await ctx.queue.run(id, async () => {});
  const tail = await stderrTail(ctx, id);
  const logs = p.settings.autoRemove ? '(--rm: its logs are gone)' : `its output: plugind logs ${id}`;
  const quoted = tail.length > 0 ? `; its stderr ends:\n${tail.map((l) => `  ${l}`).join('\n')}` : '; it wrote nothing on stderr';
  if (r.why === 'timeout') {
    const how = r.lastError?.code ? ` (last try: ${r.lastError.code})` : '';
    throw new PluginError(
      ErrorCode.DeadlineExceeded,
      `plugin ${id}: not ready: socket ${socket} accepted no connection within ${seconds}${how}; the plugin was stopped, ${logs}${quoted}`,
      { plugin: id },
    );
  }
  throw new PluginError(
    ErrorCode.FailedPrecondition,
    `plugin ${id}: exited (status ${exit.exitStatus}) before socket ${socket} accepted a connection; ${logs}${quoted}`,
    { plugin: id },
  );
}

/** The last lines the plugin wrote on stderr, from its log files. */
async function stderrTail(ctx: ExecutorContext, id: string): Promise<string[]> {
  let text = '';
  try {
    for await (const chunk of pluginLogs(logDir(ctx, id), () => undefined, Promise.resolve(), { stream: 'stderr', tail: 4096 })) text += chunk.data.toString('utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n').map((l) => l.trimEnd()).filter((l) => l !== '');
  // The first line of a tail may be cut in the middle: drop it when more follow.
  if (text.length >= 4096 && lines.length > 1) lines.shift();
  return lines.slice(-STDERR_TAIL_LINES);
}
