// plugind under load: `plugind serve` in its own process against the bench's
// containerd, driven through its gRPC API from this process, in the Go
// baseline's three modes and with the same plugin commands.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { PluginsClient, type ExitEvent, type ServerStream } from '../src/api/client.js';
import { apiSocketPath, pluginsDir } from '../src/common/paths.js';
import { LOG_NAME, defaultSpec, parseRecords } from '../src/executor/index.js';
import { runningKeeper, stopFifoKeeper } from '../src/keeper/index.js';
import { cpuSeconds, rssKb } from './proc.js';
import { nowMs, summarize } from './stats.js';
import { pool } from '../test/helpers/pool.js';

const ROOT = join(import.meta.dirname, '..');

export interface PlugindTarget {
  containerdAddress: string;
  dataDir: string;
  namespace: string;
  rootfs: string;
  workers: number;
  /** "ns": /<namespace>/<id> (containerd's client default); "": unset (moby's plugin spec). */
  cgroupsPath: 'ns' | '';
  /** The OCI runtime under the runc v2 shim; serve gets --runtime-binary only when it is not runc. */
  runtimeBinary?: string;
  /** serve --stdio: pipes (its default) or fifos. */
  stdio?: 'pipes' | 'fifos';
  /** Write V8 CPU profiles (every thread) of plugind here. */
  profileDir?: string;
}

interface Received extends ExitEvent {
  receivedAtMs: number;
}

/** A running `plugind serve` and an exit-event collector on its API. */
export class Plugind {
  child!: ChildProcess;
  client!: PluginsClient;
  readyMs = 0;
  restoreMs = 0;
  /** host:port of plugind's /metrics, from its log. */
  metricsAddress = '';
  readonly #t: PlugindTarget;
  #events: ServerStream<ExitEvent> | undefined;
  readonly #exits = new Map<string, Received>();
  readonly #waiters = new Map<string, (e: Received) => void>();

  constructor(target: PlugindTarget) {
    this.#t = target;
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Starts serve (compiled if built, else from source) and waits for "plugind ready". */
  async start(): Promise<void> {
    const built = join(ROOT, 'dist/src/cli/main.js');
    const entry = existsSync(built) ? [built] : ['--import', 'tsx', join(ROOT, 'src/cli/main.ts')];
    const t0 = nowMs();
    this.child = spawn(
      process.execPath,
      [
        // The main isolate's young generation as `npm start` and the systemd unit set it.
        '--max-semi-space-size=1',
        ...(this.#t.profileDir ? ['--cpu-prof', '--cpu-prof-dir', this.#t.profileDir] : []),
        ...entry,
        'serve',
        '--data-dir',
        this.#t.dataDir,
        '--containerd-address',
        this.#t.containerdAddress,
        '--namespace',
        this.#t.namespace,
        '--workers',
        String(this.#t.workers),
        '--metrics-address',
        '127.0.0.1:0',
        '--log-level',
        'info',
        ...(this.#t.runtimeBinary && this.#t.runtimeBinary !== 'runc' ? ['--runtime-binary', this.#t.runtimeBinary] : []),
        ...(this.#t.stdio ? ['--stdio', this.#t.stdio] : []),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let listening = 0;
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: this.child.stdout! }).on('line', (line) => {
        if (line.includes('"msg":"API listening"')) listening = nowMs();
        const m = /"metrics":"([^"]+)".*"msg":"metrics listening"/.exec(line);
        if (m) this.metricsAddress = m[1] as string;
        if (line.includes('"msg":"plugind ready"')) resolve();
      });
      this.child.once('exit', (code) => reject(new Error(`plugind serve exited (${code}) before ready`)));
    });
    this.readyMs = nowMs() - t0;
    // Restore proper: from the API being up to every shard restored.
    this.restoreMs = listening ? nowMs() - listening : this.readyMs;
    this.client = new PluginsClient(`unix://${apiSocketPath(this.#t.dataDir)}`, { timeoutMs: 600_000 });
    this.#events = this.client.events();
    const stream = this.#events;
    void (async () => {
      for await (const e of stream) {
        const r = { ...e, receivedAtMs: nowMs() };
        const w = this.#waiters.get(e.id);
        if (w) {
          this.#waiters.delete(e.id);
          w(r);
        } else this.#exits.set(e.id, r);
      }
    })().catch(() => {});
    // Live once plugind says so: no exit of the runs to come is missed.
    await stream.ready();
  }

  exitOf(id: string): Promise<Received> {
    const seen = this.#exits.get(id);
    if (seen) {
      this.#exits.delete(id);
      return Promise.resolve(seen);
    }
    return new Promise((resolve) => this.#waiters.set(id, resolve));
  }

  /**
   * The cumulative buckets of plugind's own exit-lag histogram (containerd's
   * timestamp → the event on plugind's main thread), upper bound in ms → count.
   */
  async serverLagBuckets(): Promise<Map<number, number>> {
    const out = new Map<number, number>();
    if (!this.metricsAddress) return out;
    const text = await (await fetch(`http://${this.metricsAddress}/metrics`)).text();
    for (const m of text.matchAll(/^plugind_event_lag_seconds_bucket\{le="([^"]+)"\} (\d+)/gm)) {
      out.set(m[1] === '+Inf' ? Infinity : Number(m[1]) * 1000, Number(m[2]));
    }
    return out;
  }

  spec(id: string, args: string[]): string {
    const s = defaultSpec({ rootfs: this.#t.rootfs, args, namespace: this.#t.namespace, id, ...(this.#t.cgroupsPath === '' ? { cgroupsPath: '' } : {}) });
    return JSON.stringify(s);
  }

  /** The FIFO keeper's pid (a process apart from plugind's), if it runs. */
  keeperPid(): Promise<number | undefined> {
    return runningKeeper(pluginsDir(this.#t.dataDir, this.#t.namespace));
  }

  /** Stops the FIFO keeper, which outlives plugind by design. */
  stopKeeper(): Promise<void> {
    return stopFifoKeeper(pluginsDir(this.#t.dataDir, this.#t.namespace));
  }

  /** The plugin's log file (CRI records of both streams). */
  logFile(id: string): string {
    return join(pluginsDir(this.#t.dataDir, this.#t.namespace), 'logs', id, `${LOG_NAME}.log`);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.#events?.close();
    this.client?.close();
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill(signal);
    await exited;
  }
}


let seq = 0;
const ids = (prefix: string, n: number): string[] => {
  seq += 1;
  return Array.from({ length: n }, (_, i) => `${prefix}-${seq}-${i}`);
};

export async function lifecycle(p: Plugind, label: string, n: number, c: number): Promise<Record<string, unknown>> {
  const create: number[] = [];
  const life: number[] = [];
  const lag: number[] = [];
  const lagExited: number[] = [];
  const errors: string[] = [];
  const cpu0 = cpuSeconds(p.pid);
  const buckets0 = await p.serverLagBuckets();
  const t0 = nowMs();
  await pool(ids('lc', n), c, async (id) => {
    try {
      const a = nowMs();
      await p.client.run(id, { specJson: p.spec(id, ['/bin/true']) });
      create.push(nowMs() - a);
      const ev = await p.exitOf(id);
      if (ev.eventTimestampMs !== undefined) lag.push(ev.receivedAtMs - ev.eventTimestampMs);
      if (ev.exitedAt) lagExited.push(ev.receivedAtMs - ev.exitedAt.getTime());
      await p.client.remove(id);
      life.push(nowMs() - a);
    } catch (err) {
      errors.push((err as Error).message);
    }
  });
  const wall = (nowMs() - t0) / 1000;
  const cpu = cpuSeconds(p.pid) - cpu0;
  // What share of the client's lag is plugind's main thread having the event,
  // and what is the API hop on top: the fraction of this run's exits that
  // reached the main thread within each bucket.
  const buckets1 = await p.serverLagBuckets();
  const total = (buckets1.get(Infinity) ?? 0) - (buckets0.get(Infinity) ?? 0);
  const serverLag: Record<string, number> = {};
  for (const [le, count] of buckets1) {
    if (le <= 10 && total > 0) serverLag[`le_${le}ms`] = Math.round(((count - (buckets0.get(le) ?? 0)) / total) * 1000) / 1000;
  }
  return {
    label,
    tool: 'plugind',
    mode: 'lifecycle',
    n,
    c,
    ok: life.length,
    errors: errors.length,
    error_samples: errors.slice(0, 3),
    create_start_ms: summarize(create),
    lifecycle_ms: summarize(life),
    throughput_per_s: Math.round((life.length / wall) * 100) / 100,
    exit_event_lag_ms: summarize(lag),
    exit_event_lag_from_exited_at_ms: summarize(lagExited),
    exit_event_lag_at_plugind_fraction: serverLag,
    plugind_cpu_s_per_lifecycle: Math.round((cpu / Math.max(1, life.length)) * 1e5) / 1e5,
  };
}

export async function stdio(p: Plugind, label: string, k: number, bytes: number): Promise<Record<string, unknown>> {
  const list = ids('io', k);
  const errors: string[] = [];
  const inspect: number[] = [];
  const cpu0 = cpuSeconds(p.pid);
  const t0 = nowMs();
  let done = false;
  const exits = Promise.all(list.map((id) => p.exitOf(id)));
  const started = list.map((id) =>
    p.client
      .run(id, { specJson: p.spec(id, ['head', '-c', String(bytes), '/dev/zero']), log: { maxSize: bytes * 2, maxFiles: 1 } })
      .catch((err: Error) => errors.push(err.message)),
  );
  // The coordinator must stay responsive while the workers copy.
  const prober = (async () => {
    await started[0];
    while (!done) {
      const a = nowMs();
      await p.client.inspect(list[0] as string).catch(() => {});
      inspect.push(nowMs() - a);
      // The probe's sampling interval: what is measured is each inspect's latency.
      await sleep(100);
    }
  })();
  await Promise.all(started);
  await exits;
  const t1 = nowMs();
  done = true;
  await prober;
  const cpu = cpuSeconds(p.pid) - cpu0;
  // An exit is told before its output is drained: a logs call waits for the drain.
  await pool(list, 8, async (id) => {
    for await (const chunk of p.client.logs(id, { tail: 0 })) void chunk;
  });
  let total = 0;
  for (const id of list) total += existsSync(p.logFile(id)) ? await stdoutBytes(p.logFile(id)) : 0;
  await pool(list, 8, (id) => p.client.remove(id).catch(() => {}));
  return {
    label,
    tool: 'plugind',
    mode: 'stdio',
    n: k,
    bytes_per_plugin: bytes,
    errors: errors.length,
    error_samples: errors.slice(0, 3),
    total_bytes_received: total,
    bytes_match: total === k * bytes,
    aggregate_MBps_from_create: Math.round((total / ((t1 - t0) / 1000) / 1e6) * 10) / 10,
    inspect_during_flood_ms: summarize(inspect),
    plugind_cpu_s: Math.round(cpu * 100) / 100,
  };
}

export async function steady(
  p: Plugind,
  label: string,
  n: number,
  c: number,
  settleMs: number,
): Promise<{ result: Record<string, unknown>; plugind: Plugind }> {
  const list = ids('st', n);
  const errors: string[] = [];
  const create: number[] = [];
  const rss0 = rssKb(p.pid);
  const t0 = nowMs();
  await pool(list, c, async (id) => {
    const a = nowMs();
    try {
      await p.client.run(id, { specJson: p.spec(id, ['sh', '-c', "trap 'exit 0' TERM; sleep 3600 & wait"]) });
      create.push(nowMs() - a);
    } catch (err) {
      errors.push((err as Error).message);
    }
  });
  const createAll = (nowMs() - t0) / 1000;
  // Held for settleMs, then measured idle over as long: the wait is what is measured.
  await sleep(settleMs);
  const rssHeld = rssKb(p.pid);
  const keeper = await p.keeperPid();
  const keeperRss = keeper ? rssKb(keeper) : 0;
  const cpuIdle0 = cpuSeconds(p.pid);
  await sleep(settleMs);
  const idleCpuPct = ((cpuSeconds(p.pid) - cpuIdle0) / (settleMs / 1000)) * 100;

  // Restart plugind: graceful stop, start again, every plugin restored.
  await p.stop('SIGTERM');
  await p.start();
  const restored = (await p.client.list()).filter((x) => list.includes(x.id) && x.state === 'running').length;
  const rssRestored = rssKb(p.pid);

  // SIGTERM to all, then wait until every exit has been handled.
  const tS = nowMs();
  const exits = Promise.all(list.map((id) => p.exitOf(id)));
  await pool(list, 32, (id) => p.client.signal(id, 'TERM').catch(() => {}));
  await exits;
  const stopAll = (nowMs() - tS) / 1000;
  await pool(list, 16, (id) => p.client.remove(id).catch(() => {}));
  return {
    plugind: p,
    result: {
      label,
      tool: 'plugind',
      mode: 'steady',
      n,
      c,
      started: create.length,
      errors: errors.length,
      error_samples: errors.slice(0, 3),
      create_start_ms: summarize(create),
      create_all_s: Math.round(createAll * 100) / 100,
      plugind_rss_kb_before: rss0,
      plugind_rss_kb_held: rssHeld,
      plugind_rss_kb_per_plugin: Math.round(((rssHeld - rss0) / Math.max(1, n)) * 10) / 10,
      plugind_rss_kb_after_restore: rssRestored,
      fifo_keeper_rss_kb_held: keeperRss,
      plugind_idle_cpu_pct_of_one_core: Math.round(idleCpuPct * 10) / 10,
      restart_to_ready_s: Math.round(p.readyMs) / 1000,
      restore_s: Math.round(p.restoreMs) / 1000,
      restored_running: restored,
      sigterm_to_all_exit_handled_s: Math.round(stopAll * 1000) / 1000,
    },
  };
}

/** The stdout bytes a CRI log file holds: the content of its stdout records, a newline after each F. */
async function stdoutBytes(file: string): Promise<number> {
  let total = 0;
  let rest: Buffer = Buffer.alloc(0);
  for await (const data of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    const parsed = parseRecords(rest.length > 0 ? Buffer.concat([rest, data]) : data);
    for (const r of parsed.records) if (r.stream === 'stdout') total += r.content.length + (r.full ? 1 : 0);
    rest = Buffer.from(parsed.rest);
  }
  return total;
}

/**
 * /metrics with n plugins running: k scrapes one after the other, each
 * reading every plugin's usage (one Tasks.Metrics call per shard) and
 * rendering the per-plugin series. Times are from request to the last
 * byte; CPU is plugind's user+sys over the k scrapes.
 */
export async function scrape(p: Plugind, label: string, n: number, c: number, k: number): Promise<Record<string, unknown>> {
  const list = ids('sc', n);
  const errors: string[] = [];
  await pool(list, c, async (id) => {
    try {
      await p.client.run(id, { specJson: p.spec(id, ['sleep', '3600']), resources: { memoryBytes: 64 << 20 } });
    } catch (err) {
      errors.push((err as Error).message);
    }
  });
  const url = `http://${p.metricsAddress}/metrics`;
  // One scrape first: its caches warm, as a Prometheus that scrapes every 15 s finds them.
  const first = await (await fetch(url)).text();
  const times: number[] = [];
  const cpu0 = cpuSeconds(p.pid);
  let body = first;
  for (let i = 0; i < k; i++) {
    const a = nowMs();
    body = await (await fetch(url)).text();
    times.push(nowMs() - a);
  }
  const cpu = cpuSeconds(p.pid) - cpu0;
  const perPlugin = body.split('\n').filter((l) => l.startsWith('plugind_plugin_memory_bytes{')).length;
  await pool(list, 32, (id) => p.client.remove(id, true).catch(() => {}));
  return {
    label,
    tool: 'plugind',
    mode: 'scrape',
    n,
    k,
    started: n - errors.length,
    errors: errors.length,
    error_samples: errors.slice(0, 3),
    scrape_ms: summarize(times),
    scrape_cpu_ms_each: Math.round((cpu / k) * 1000 * 10) / 10,
    body_bytes: Buffer.byteLength(body),
    plugins_in_scrape: perPlugin,
  };
}
