// `plugind exec`: a process run in a running plugin's container, beside its
// init (Tasks.Exec), with the plugin's own process settings (user, cwd,
// env, capabilities) and the command given. Its stdout and stderr come
// through a FIFO pair of its own, read on this thread and handed to the
// caller as they arrive. Whatever ends it (its exit, the caller going
// away, the plugin exiting), the process is killed if it still runs, reaped
// (DeleteProcess) and its FIFOs removed.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isNotFound, packProcessSpec, unpackSpec, type ContainerdClient, type Logger } from '../containerd/index.js';
import { openReadEnd } from './fifo.js';
import { mkfifoSync } from './libc.js';
import { mergeEnv, type OciSpec } from './spec.js';
import type { StreamName } from './stdio.js';

export interface ExecRequest {
  id: string;
  /** Empty: /bin/sh. */
  args: string[];
  /** K=V, over the plugin's own env. */
  env: string[];
}

export interface ExecSink {
  /** Output as it comes; resolves when the caller can take more. */
  write(stream: StreamName, data: Buffer): Promise<void> | void;
  /** Aborted when the caller has gone: the process is killed. */
  signal: AbortSignal;
}

// After the process exits the shim closes its FIFO ends once the copy is
// done; output not drained by then is left, not waited for.
const DRAIN_MS = 2000;

/** The exit status of the process; throws if it could not be started. */
export async function execInPlugin(client: ContainerdClient, fifoRoot: string, req: ExecRequest, sink: ExecSink, log: Logger): Promise<number> {
  const { id } = req;
  const container = await client.containers.get(id);
  if (!container.spec) throw new Error(`plugin ${id}: its container has no spec`);
  const spec = unpackSpec(container.spec) as OciSpec;
  const process = {
    ...spec.process,
    terminal: false,
    args: req.args.length > 0 ? req.args : ['/bin/sh'],
    env: mergeEnv(spec.process.env ?? [], req.env),
  };
  const execId = `exec-${randomBytes(6).toString('hex')}`;
  const dir = join(fifoRoot, `${id}.${execId}`);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const sockets: net.Socket[] = [];
  // A write end of our own per FIFO, held until the process has exited: the
  // shim opens its end only when the process starts, and a FIFO read with
  // no writer yet would end at once.
  const holds: number[] = [];
  const release = (): void => {
    for (const fd of holds.splice(0)) closeSync(fd);
  };
  let created = false;
  let exited = false;
  let waited: Promise<unknown> | undefined;
  const kill = (): void => {
    if (created && !exited) void client.tasks.kill(id, 9, { execId }).catch(() => {});
  };
  sink.signal.addEventListener('abort', kill, { once: true });
  try {
    const paths = { stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') };
    const drained: Promise<unknown>[] = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      mkfifoSync(paths[stream]);
      // Opened before the shim opens its end: it never waits for a reader.
      const fd = await openReadEnd(paths[stream]);
      holds.push(openSync(paths[stream], fsc.O_WRONLY | fsc.O_NONBLOCK));
      const socket = new net.Socket({ fd, readable: true, writable: false } as net.SocketConstructorOpts);
      sockets.push(socket);
      socket.on('data', (data: Buffer) => {
        const more = sink.write(stream, data);
        if (more) {
          socket.pause();
          void Promise.resolve(more).then(() => socket.resume());
        }
      });
      socket.on('error', () => {});
      drained.push(once(socket, 'close'));
    }
    await client.tasks.exec({ containerId: id, execId, ...paths, spec: packProcessSpec(process) });
    created = true;
    const wait = client.tasks.wait(id, { execId });
    waited = wait.catch(() => {});
    // Gone before it started: it is not started at all.
    sink.signal.throwIfAborted();
    await client.tasks.start(id, execId);
    const status = await wait.then(
      (e) => e.exitStatus,
      (err: Error) => {
        // The plugin's task was deleted under it (the plugin exited): its processes went with it.
        if (isNotFound(err)) return 137;
        throw err;
      },
    );
    exited = true;
    release();
    await Promise.race([Promise.all(drained), sleep(DRAIN_MS)]);
    return status;
  } finally {
    sink.signal.removeEventListener('abort', kill);
    release();
    for (const s of sockets) s.destroy();
    if (created) {
      if (!exited) {
        await client.tasks.kill(id, 9, { execId }).catch(() => {});
        await Promise.race([waited, sleep(DRAIN_MS)]);
      }
      await client.tasks.deleteProcess(id, execId).catch((err: Error) => {
        if (!isNotFound(err)) log.warn({ plugin: id, execId, err }, 'exec process not deleted');
      });
    }
    await rm(dir, { recursive: true, force: true });
  }
}
