// Plugins writing as fast as they can for a minute (PLUGIND_FLOOD_SECONDS):
// plugind's RSS stays under FLOOD_RSS_BOUND_MB, blocking plugins lose
// nothing, and in non-blocking mode plugind_stdio_dropped_bytes_total is
// exactly what the files lack.
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import type { Harness } from '../helpers/containerd.js';
import { criContent } from '../helpers/log-lines.js';
import { pool } from '../helpers/pool.js';
import { leftovers, logText, metricsText, pluginsDir, startServed, sumSamples, until, usage, type Served, type ServedRig } from '../helpers/serve.js';

/** The bound this suite holds plugind to while 16 plugins flood it. */
const FLOOD_RSS_BOUND_MB = 360;
const SECONDS = Number(process.env['PLUGIND_FLOOD_SECONDS'] ?? 60);
const MIB = 1 << 20;
// The blocking plugins' files rotate at this size (between records).
const MAX_SIZE = 8 * MIB + 13;

let rig: ServedRig;
let h: Harness;
let s: Served;
before(async () => {
  rig = await startServed('flood');
  ({ h, s } = rig);
});
after(async () => {
  await rig?.close();
});

const logsOf = (id: string): string => join(pluginsDir(rig.dataDir, rig.namespace), 'logs', id);

/** Bytes of the plugin's log files on disk. */
function onDisk(id: string): number {
  const dir = logsOf(id);
  return readdirSync(dir)
    .filter((f) => f.startsWith('plugin.log'))
    .reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

test(`flood for ${SECONDS} s: RSS under ${FLOOD_RSS_BOUND_MB} MB, dropped bytes are what the files lack`, async (t) => {
  const c = s.client;
  const log = { maxSize: MAX_SIZE, maxFiles: 2 };
  const blocking = Array.from({ length: 8 }, (_, i) => `block-${i}`);
  const lossy = Array.from({ length: 8 }, (_, i) => `lossy-${i}`);
  const base = usage(s.pid);
  await pool(blocking, 4, (id) => c.run(id, { rootfs: h.rootfs, args: ['cat', '/dev/zero'], log }));
  // Whole MiBs, counted; SIGTERM ends the loop after the current MiB and the count goes to stderr.
  const counted = 'trap "stop=1" TERM; n=0; while [ -z "$stop" ]; do head -c 1048576 /dev/zero; n=$((n+1)); done; echo $n >&2';
  await pool(lossy, 4, (id) =>
    // Room for all they keep (the disk lets through a few hundred MB a minute): none rotates away.
    c.run(id, { rootfs: h.rootfs, args: ['sh', '-c', counted], log: { maxSize: 256 * MIB, maxFiles: 4, mode: 'non-blocking', bufferSize: 64 << 10 } }),
  );
  let peak = 0;
  const end = Date.now() + SECONDS * 1000;
  while (Date.now() < end) {
    peak = Math.max(peak, usage(s.pid).rssMb);
    await sleep(250);
  }
  await pool(lossy, 8, (id) => c.signal(id, 'TERM'));
  await pool(blocking, 8, (id) => c.stop(id, 0));
  await until('the counted writers to exit', async () => (await c.list()).filter((p) => p.state === 'stopped').length === 16, 60_000);
  const text = await metricsText(s.metricsUrl);
  const metric = (name: string, stream: string): number => sumSamples(text, name, { stream });
  const read = metric('plugind_stdio_bytes_total', 'stdout');
  const dropped = metric('plugind_stdio_dropped_bytes_total', 'stdout');
  assert.equal(metric('plugind_stdio_dropped_bytes_total', 'stderr'), 0);

  let written = 0;
  let kept = 0;
  for (const id of lossy) {
    const err = await logText(c, id, 'stderr');
    assert.match(err, /^\d+\n$/, `${id} printed its count`);
    written += Number(err) * MIB;
    kept += criContent(logsOf(id), 'stdout').length;
  }
  // What the files lack is exactly the dropped bytes.
  assert.equal(written - kept, dropped, `written ${written}, kept ${kept}, dropped ${dropped}`);
  for (const id of blocking) {
    const size = onDisk(id);
    assert.ok(size > MAX_SIZE && size <= 2 * MAX_SIZE, `${id}: ${size} bytes kept`);
  }
  const gib = (n: number): string => (n / 2 ** 30).toFixed(1);
  t.diagnostic(
    `${SECONDS} s, 16 plugins: ${gib(read)} GiB read (${(read / MIB / SECONDS).toFixed(0)} MiB/s); non-blocking: ${gib(written)} GiB written, ` +
      `${gib(dropped)} GiB dropped (counted = lacking from the files); ` +
      `RSS ${base.rssMb.toFixed(0)} MB before, ${peak.toFixed(0)} MB peak (bound ${FLOOD_RSS_BOUND_MB})`,
  );
  assert.ok(peak < FLOOD_RSS_BOUND_MB, `RSS peaked at ${peak.toFixed(0)} MB`);
  for (const p of await c.list()) await c.remove(p.id);
  assert.deepEqual(await leftovers(rig), []);
  const now = usage(s.pid);
  assert.ok(now.fds <= base.fds + 8, `fds ${base.fds} → ${now.fds}`);
  // Memory stays at its high-water mark (allocator and heap keep it); the bound holds after, too.
  t.diagnostic(`after the flood: RSS ${now.rssMb.toFixed(0)} MB, fds ${base.fds} → ${now.fds}`);
  assert.ok(now.rssMb < FLOOD_RSS_BOUND_MB, `RSS ${now.rssMb.toFixed(0)} MB after the flood`);
});
