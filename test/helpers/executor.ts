// An executor wired to a real containerd the way the service wires it: one
// event loop feeding handleEvent, restoreAll as the reconcile. Exits are
// collected so tests can count them.
import { EventLoop, taskEventFilters, type ContainerdClient } from '../../src/containerd/index.js';
import { Executor, defaultSpec, type ExecutorOptions, type LogChunk, type PluginExit, type PluginSettingsInput } from '../../src/executor/index.js';
import type { Harness } from './containerd.js';

export interface ExecutorRig {
  client: ContainerdClient;
  executor: Executor;
  dataDir: string;
  exits: PluginExit[];
  /** Resolves with the next handled exit of id (or one already seen). */
  exitOf(id: string): Promise<PluginExit>;
  run(id: string, args: string[], settings?: PluginSettingsInput): Promise<{ pid: number }>;
  close(): Promise<void>;
}

export async function startExecutor(
  h: Harness,
  opts: { client?: ContainerdClient; dataDir?: string; executor?: Partial<ExecutorOptions> } = {},
): Promise<ExecutorRig> {
  const client = opts.client ?? h.client('ex');
  const dataDir = opts.dataDir ?? `${h.dir}/data-${client.namespace}`;
  const exits: PluginExit[] = [];
  const waiters = new Map<string, Array<(e: PluginExit) => void>>();
  const executor = new Executor({
    client,
    dataDir,
    ...opts.executor,
    onExit: (e) => {
      exits.push(e);
      for (const w of waiters.get(e.id) ?? []) w(e);
      waiters.delete(e.id);
      opts.executor?.onExit?.(e);
    },
  });
  const loop = new EventLoop({
    client,
    filters: taskEventFilters(client.namespace),
    onEvent: (ev) => executor.handleEvent(ev),
    onLive: async ({ resubscribed }) => {
      if (resubscribed) await executor.restoreAll();
    },
  });
  await loop.start();
  return {
    client,
    executor,
    dataDir,
    exits,
    /** The exit, once told and reaped (files flushed, exit recorded). */
    async exitOf(id) {
      const seen =
        exits.find((e) => e.id === id) ??
        (await new Promise<PluginExit>((resolve) => {
          const list = waiters.get(id) ?? [];
          list.push(resolve);
          waiters.set(id, list);
        }));
      await executor.settled(id);
      return seen;
    },
    run(id, args, settings) {
      return executor.create(id, defaultSpec({ rootfs: h.rootfs, args, namespace: client.namespace, id }), settings);
    },
    async close() {
      await loop.close();
      await executor.close();
    },
  };
}

/** A logs() read, joined per stream. */
export async function collect(it: AsyncIterable<LogChunk>): Promise<{ stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  for await (const c of it) out[c.stream] += c.data.toString();
  return out;
}
