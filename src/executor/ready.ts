// Whether a Docker plugin is ready: its socket accepts a connection. moby's
// manager sleeps 500 ms and then dials every 3 s; here the socket is dialled
// from the moment the task starts, quickly at first, until it answers, the
// plugin exits, or the ready timeout passes.
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import net from 'node:net';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Plugin } from './plugin.js';

/** sun_path holds 108 bytes, the last one a NUL. */
export const MAX_UNIX_PATH = 107;

/**
 * Connects to a unix socket and hangs up: undefined when it accepted, else
 * the error (ENOENT: not made yet, ECONNREFUSED: nobody listens). A path
 * too long for sun_path is dialled through `/proc/self/fd/N/<name>` of its
 * dir opened here, which names the same socket in a few bytes.
 */
export async function dialUnix(path: string, timeoutMs = 1000): Promise<NodeJS.ErrnoException | undefined> {
  let fd: number | undefined;
  let target = path;
  if (Buffer.byteLength(path) > MAX_UNIX_PATH) {
    try {
      fd = openSync(dirname(path), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    } catch (err) {
      return err as NodeJS.ErrnoException;
    }
    target = `/proc/self/fd/${fd}/${basename(path)}`;
  }
  try {
    return await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      const s = net.connect(target);
      const done = (err: NodeJS.ErrnoException | undefined): void => {
        clearTimeout(timer);
        s.destroy();
        resolve(err);
      };
      const timer = setTimeout(() => done(Object.assign(new Error(`connect ${path}: no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs);
      s.once('connect', () => done(undefined));
      s.once('error', (err: NodeJS.ErrnoException) => done(err));
    });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export type ReadyOutcome = { ready: true } | { ready: false; why: 'timeout' | 'exited'; lastError?: NodeJS.ErrnoException };

/**
 * Dials the socket until it accepts (p.ready set), the plugin's task is no
 * longer the one we started with (it exited), or timeoutMs passes. Runs
 * outside the id's queue: the exit it races is handled there.
 */
export async function waitReady(p: Plugin, socket: string, timeoutMs: number): Promise<ReadyOutcome> {
  const pid = p.pid;
  const deadline = Date.now() + timeoutMs;
  const gone = (): boolean => p.state === 'stopped' || p.pid !== pid;
  const exited = p.exited.then(() => 'exited' as const);
  let pause = 5;
  let lastError: NodeJS.ErrnoException | undefined;
  while (!gone()) {
    lastError = await dialUnix(socket, Math.max(1, Math.min(1000, deadline - Date.now())));
    if (!lastError) {
      if (gone()) break;
      p.ready = true;
      return { ready: true };
    }
    const left = deadline - Date.now();
    if (left <= 0) return { ready: false, why: 'timeout', lastError };
    if ((await Promise.race([exited, sleep(Math.min(pause, left), 'again' as const, { ref: false })])) === 'exited') break;
    pause = Math.min(pause * 2, 100);
  }
  return lastError ? { ready: false, why: 'exited', lastError } : { ready: false, why: 'exited' };
}
