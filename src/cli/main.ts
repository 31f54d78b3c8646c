// The plugind command: `serve` runs the service; the other verbs are gRPC
// clients of it. Tables for people, --json for machines; errors are one
// line on stderr and a non-zero exit. The service (containerd client,
// piscina, prom-client) is loaded by `serve` only: a client verb loads the
// API client and no more.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { Plugin } from '../api/client.js';
import { DEFAULT_DATA_DIR, DEFAULT_INIT_PATH, DEFAULT_RUNTIME_BINARY } from '../api/wire.js';
import { MAX_LOG_FILES, MAX_LOG_SIZE } from '../common/limits.js';
import {
  LEVELS,
  addTlsOptions,
  addressOption,
  client,
  collect,
  int,
  level,
  out,
  readySeconds,
  runtimeBinary,
  seconds,
  table,
  tlsFiles,
  withClient,
} from './common.js';
import { addImageVerbs } from './images.js';
import { addHealthOptions, healthFromFlags } from './health.js';
import { addExecVerb, addOperateVerbs, addResourceOptions, addStatsVerb, resourcesFromFlags } from './operate.js';

function pluginJson(p: Plugin): Record<string, unknown> {
  const o: Record<string, unknown> = { id: p.id, state: p.state, pid: p.pid, shard: p.shard, createdAt: p.createdAt?.toISOString() ?? null };
  if (p.exitStatus !== undefined) {
    o.exitStatus = p.exitStatus;
    o.exitedAt = p.exitedAt?.toISOString() ?? null;
  }
  if (p.oomKilled) o.oomKilled = true;
  o.restart = p.restart;
  o.restartCount = p.restartCount;
  if (p.nextRestartAt) o.nextRestartAt = p.nextRestartAt.toISOString();
  o.autoRemove = p.autoRemove;
  o.runtimeBinary = p.runtimeBinary;
  if (p.image) o.image = p.image;
  if (p.resources) o.resources = p.resources;
  if (p.healthCheck) o.healthCheck = p.healthCheck;
  if (p.health) {
    o.health = {
      status: p.health.status,
      failingStreak: p.health.failingStreak,
      log: p.health.log.map((r) => ({ start: r.start?.toISOString() ?? null, end: r.end?.toISOString() ?? null, exitCode: r.exitCode, output: r.output })),
    };
  }
  // Docker plugins only: other plugins keep the shape they had.
  if (p.bundle) {
    o.socket = p.bundle.socket;
    o.interface = p.bundle.interface;
    if (p.bundle.propagatedMount) o.propagatedMount = p.bundle.propagatedMount;
    o.ready = p.bundle.ready;
    o.privileges = p.bundle.privileges;
  }
  return o;
}

const BUNDLE_HELP = `
Docker plugins (--bundle DIR): DIR holds config.json and rootfs/, as \`docker plugin create\` takes
them. The plugin runs as moby runs it: the config's Entrypoint with its Args (args after -- replace
them), its Env defaults (--env overrides them), a writable rootfs, and its runtime dir bind-mounted
at /run/docker/plugins. run returns once the socket named by Interface.Socket accepts a connection;
if it does not within --ready-timeout, or the plugin exits first, run fails quoting its stderr and
the plugin stays listed, stopped, with its logs.

A bundle's config can ask for the host's network (Network.Type host), host paths mounted (Mounts),
host devices (Linux.Devices, Linux.AllowAllDevices), capabilities beyond the default set
(Linux.Capabilities), the host's pid and ipc namespaces (PidHost, IpcHost), and mounts that reach
the host (PropagatedMount). plugind grants them without asking, unlike \`docker plugin install\`:
its API is root-equivalent already. \`plugind inspect ID\` lists what a plugin was given
("privileges"). Network.Type bridge, none and null get a network namespace of their own with
loopback only.`;

const program = new Command('plugind')
  .description('Runs plugins (long-lived helper processes) as containers through containerd')
  .configureOutput({ outputError: (s, write) => write(s.startsWith('error:') ? `plugind: ${s.slice(7)}` : s) });

program
  .command('serve')
  .description('run the service: embedded containerd (unless --containerd-address), shard workers, API, metrics')
  .option('--data-dir <dir>', 'state of plugind and its embedded containerd', DEFAULT_DATA_DIR)
  .option('--containerd-address <address>', 'use this containerd (unix:///PATH) instead of an embedded one')
  .option('--namespace <ns>', 'containerd namespace for plugins', 'plugind')
  .option('--workers <n>', 'shard worker threads', int('--workers', 1, 256), availableParallelism())
  .option('--address <address>', 'API address (default unix://<data-dir>/plugind.sock; tcp://127.0.0.1:PORT allowed)')
  .option('--metrics-address <host:port>', 'HTTP /metrics, /healthz, /readyz', '127.0.0.1:9464')
  .option('--stop-plugins-on-exit', 'stop every plugin on shutdown (default: leave them running)')
  .option('--init', 'plugins that do not say (run --init / --no-init) get a static init as PID 1')
  .option('--init-path <file>', 'the static init binary', DEFAULT_INIT_PATH)
  .option('--runtime-binary <name|path>', "OCI runtime run by runc's shim for plugins that do not say (crun, say)", runtimeBinary, DEFAULT_RUNTIME_BINARY)
  .option('--group <group>', 'API socket mode 0660 for this group (default: 0600, root only)')
  .option('--tls-cert <file>', 'server certificate: mutual TLS on a tcp:// address (required off loopback)')
  .option('--tls-key <file>', 'server key')
  .option('--tls-ca <file>', 'CA that signs client certificates')
  .option('--log-level <level>', LEVELS.join('|'), level, 'info')
  .action(async (o: {
    dataDir: string;
    containerdAddress?: string;
    namespace: string;
    workers: number;
    address?: string;
    metricsAddress: string;
    stopPluginsOnExit?: boolean;
    init?: boolean;
    initPath: string;
    runtimeBinary: string;
    group?: string;
    tlsCert?: string;
    tlsKey?: string;
    tlsCa?: string;
    logLevel: string;
  }) => {
    const [{ pino }, { Service }] = await Promise.all([import('pino'), import('../api/service.js')]);
    const log = pino({ level: o.logLevel, base: { service: 'plugind' } });
    const service = new Service({
      dataDir: o.dataDir,
      namespace: o.namespace,
      workers: o.workers,
      metricsAddress: o.metricsAddress,
      stopPluginsOnExit: o.stopPluginsOnExit ?? false,
      init: o.init ?? false,
      initPath: o.initPath,
      runtimeBinary: o.runtimeBinary,
      logLevel: o.logLevel,
      testHooks: process.env.PLUGIND_TEST_HOOKS === '1',
      logger: log,
      ...(o.containerdAddress ? { containerdAddress: o.containerdAddress } : {}),
      ...(o.address ? { address: o.address } : {}),
      ...(o.group !== undefined ? { group: o.group } : {}),
      tls: tlsFiles(o),
    });
    let stopping = false;
    const shutdown = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      service.stop().then(
        () => process.exit(0),
        (err: Error) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => shutdown('SIGTERM'));
    process.on('SIGINT', () => shutdown('SIGINT'));
    // A start that fails has stopped what it started.
    await service.start();
  });

addHealthOptions(addResourceOptions(program
  .command('run <id> [command...]')
  .description('create and start a plugin: --rootfs DIR -- CMD ARG..., --spec FILE, or a Docker plugin: --bundle DIR | --image REF [-- ARG...]')
  .option('--rootfs <dir>', 'root filesystem directory')
  .option('--spec <file>', 'OCI runtime spec (JSON)')
  .option('--bundle <dir>', 'Docker plugin bundle: config.json and rootfs/ (see below)')
  .option('--image <ref>', 'Docker plugin image, pulled first (plugind pull REF): its rootfs a snapshot of the image')
  .option('--ready-timeout <seconds>', "with --bundle or --image: how long to wait for the plugin's socket (default 10)", readySeconds)
  .option('--env <K=V>', 'environment variable (repeatable)', collect, [] as string[])
  .option('--rm', 'remove the plugin (container and logs) when it exits')
  .option('--replace', 'replace a stopped plugin of this id (its logs go too)')
  .option('--init', 'run a static init (tini) as PID 1: SIGTERM reaches CMD, orphans are reaped')
  .option('--no-init', 'no init, whatever serve --init says')
  .option('--runtime-binary <name|path>', "OCI runtime run by runc's shim for this plugin (default: serve --runtime-binary)", runtimeBinary)
  .option('--restart <policy>', "no | on-failure[:N] | always | unless-stopped (docker's; backoff 100 ms doubling to 1 min, reset after a 10 s run)", 'no')
  .option('--log-mode <mode>', 'blocking (lossless) | non-blocking (drops, counted)')
  .option('--log-max-size <bytes>', 'rotate plugin log files at this size', int('--log-max-size', 1, MAX_LOG_SIZE))
  .option('--log-max-files <n>', 'log files kept per stream', int('--log-max-files', 1, MAX_LOG_FILES))
  .option('--json', 'print {"id","pid","shard"}')
  .addOption(addressOption())
  .addHelpText('after', BUNDLE_HELP)))
  .action(async (id: string, command: string[], o: Record<string, unknown>) => {
    if (o.rootfs && o.spec) throw new InvalidArgumentError('give --rootfs or --spec, not both');
    if (o.bundle && (o.rootfs || o.spec)) throw new InvalidArgumentError(`plugin ${id}: give --bundle alone, not with --${o.rootfs ? 'rootfs' : 'spec'}`);
    if (o.image && (o.bundle || o.rootfs || o.spec)) {
      throw new InvalidArgumentError(`plugin ${id}: give --image alone, not with --${o.bundle ? 'bundle' : o.rootfs ? 'rootfs' : 'spec'}`);
    }
    let specJson: string | undefined;
    if (o.spec) {
      try {
        specJson = readFileSync(o.spec as string, 'utf8');
      } catch (err) {
        throw new Error(`plugin ${id}: cannot read spec ${o.spec as string}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
    }
    const log: Record<string, unknown> = {};
    if (o.logMode) log.mode = o.logMode;
    if (o.logMaxSize) log.maxSize = o.logMaxSize;
    if (o.logMaxFiles) log.maxFiles = o.logMaxFiles;
    await withClient(o as { address: string }, async (c) => {
      const res = await c.run(id, {
        // Relative to where the command runs, as a user means it; plugind wants it absolute.
        ...(o.rootfs ? { rootfs: resolve(o.rootfs as string) } : {}),
        ...(specJson !== undefined ? { specJson } : {}),
        args: command,
        env: o.env as string[],
        autoRemove: Boolean(o.rm),
        restart: o.restart as string,
        log,
        replace: Boolean(o.replace),
        ...(o.init !== undefined ? { init: Boolean(o.init) } : {}),
        ...(o.runtimeBinary ? { runtimeBinary: o.runtimeBinary as string } : {}),
        ...(o.bundle ? { bundle: resolve(o.bundle as string) } : {}),
        ...(o.image ? { image: o.image as string } : {}),
        ...(o.readyTimeout !== undefined ? { readyTimeoutSeconds: o.readyTimeout as number } : {}),
        resources: resourcesFromFlags(o),
        ...healthFromFlags(o),
      });
      out(o.json ? JSON.stringify(res) + '\n' : `${res.id}\n`);
    });
  });

program
  .command('ls')
  .description('list plugins')
  .option('--json', 'print a JSON array')
  .addOption(addressOption())
  .action(async (o: { json?: boolean; address: string }) => {
    await withClient(o, async (c) => {
      const plugins = await c.list();
      if (o.json) return void out(JSON.stringify(plugins.map(pluginJson)) + '\n');
      // READY only when a Docker plugin is listed: a host without one sees the table it always did.
      const ready = plugins.some((p) => p.bundle);
      const rows = [['ID', 'STATE', 'PID', 'SHARD', 'CREATED', 'EXIT', ...(ready ? ['READY'] : [])]];
      for (const p of plugins) {
        // As docker ps says it: "running (healthy)".
        const state = p.health && p.state === 'running' ? `${p.state} (${p.health.status})` : p.state;
        const row = [p.id, state, String(p.pid || '-'), String(p.shard), p.createdAt?.toISOString() ?? '-', p.exitStatus === undefined ? '-' : String(p.exitStatus)];
        if (ready) row.push(p.bundle ? (p.bundle.ready ? 'yes' : 'no') : '-');
        rows.push(row);
      }
      out(table(rows));
    });
  });

program
  .command('inspect <id>')
  .description('show one plugin')
  .option('--json', 'print one JSON document')
  .addOption(addressOption())
  .action(async (id: string, o: { json?: boolean; address: string }) => {
    await withClient(o, async (c) => {
      const p = await c.inspect(id);
      if (o.json) return void out(JSON.stringify(pluginJson(p)) + '\n');
      out(table(Object.entries(pluginJson(p)).map(([k, v]) => [k, typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)])));
    });
  });

program
  .command('kill <id>')
  .description('send a signal (default KILL)')
  .option('--signal <sig>', 'name (TERM, HUP) or number', 'KILL')
  .addOption(addressOption())
  .action(async (id: string, o: { signal: string; address: string }) => {
    await withClient(o, async (c) => {
      const delivered = await c.signal(id, o.signal);
      if (!delivered) process.stderr.write(`plugind: plugin ${id} had already exited\n`);
    });
  });

program
  .command('stop <id>')
  .description('SIGTERM, then SIGKILL after --timeout; returns when it has exited')
  .option('--timeout <seconds>', 'before SIGKILL', seconds, 10)
  .addOption(addressOption())
  .action(async (id: string, o: { timeout: number; address: string }) => {
    await withClient(o, async (c) => {
      await c.stop(id, o.timeout);
    });
  });

program
  .command('rm <id>')
  .description('remove a stopped plugin (container and logs)')
  .option('--force', 'kill it first if it runs')
  .addOption(addressOption())
  .action(async (id: string, o: { force?: boolean; address: string }) => {
    await withClient(o, async (c) => {
      await c.remove(id, Boolean(o.force));
    });
  });

program
  .command('logs <id>')
  .description("print a plugin's output (both streams unless --stream)")
  .option('-f, --follow', 'keep printing new output until the plugin exits; if plugind goes away first, exit 1 saying "plugind went away" (no reconnect: run it again)')
  .addOption(new Option('--stream <stream>', 'only this stream').choices(['stdout', 'stderr']))
  .option('--tail <bytes>', 'only the last BYTES of each stream', int('--tail', 0, Number.MAX_SAFE_INTEGER))
  .addOption(addressOption())
  .action(async (id: string, o: { follow?: boolean; stream?: 'stdout' | 'stderr'; tail?: number; address: string }) => {
    const c = client(o);
    const opts: { follow: boolean; stream?: 'stdout' | 'stderr'; tail?: number } = { follow: Boolean(o.follow) };
    if (o.stream) opts.stream = o.stream;
    if (o.tail !== undefined) opts.tail = o.tail;
    const stream = c.logs(id, opts);
    // ^C ends the stream itself (closing the client would leave the call open) and exits 0.
    const stop = (): void => stream.close();
    process.once('SIGINT', stop);
    try {
      for await (const chunk of stream) {
        const target = chunk.stream === 'stderr' ? process.stderr : process.stdout;
        if (!target.write(chunk.data)) await new Promise((r) => target.once('drain', r));
      }
    } finally {
      process.off('SIGINT', stop);
      c.close();
    }
  });

program
  .command('events')
  .description('print plugin exits as they happen')
  .addHelpText(
    'after',
    '\nRuns until ^C (exit 0). If plugind goes away (stopped, killed), it exits 1 saying "plugind went away";\n' +
      'it does not reconnect, so that a gap is never silent: exits while no stream was open are not replayed.',
  )
  .option('--json', 'one JSON object per line')
  .addOption(addressOption())
  .action(async (o: { json?: boolean; address: string }) => {
    const c = client(o);
    process.once('SIGINT', () => {
      c.close();
      process.exit(0);
    });
    for await (const e of c.events()) {
      const at = e.exitedAt?.toISOString() ?? null;
      const oom = e.oomKilled ? { oomKilled: true } : {};
      out(o.json ? JSON.stringify({ id: e.id, pid: e.pid, exitStatus: e.exitStatus, exitedAt: at, ...oom }) + '\n' : `${at} ${e.id} exited ${e.exitStatus} (pid ${e.pid})${e.oomKilled ? ' oom-killed' : ''}\n`);
    }
  });

addImageVerbs(program);
addOperateVerbs(program);
addStatsVerb(program);
addExecVerb(program);

for (const cmd of program.commands) if (cmd.name() !== 'serve') addTlsOptions(cmd);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`plugind: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
