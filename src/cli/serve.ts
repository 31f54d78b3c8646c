// `plugind serve`: the service in this process (the service's modules are
// loaded here only: a client verb loads the API client and no more).
import { availableParallelism } from 'node:os';
import { Option, type Command } from 'commander';
import { DEFAULT_DATA_DIR, DEFAULT_INIT_PATH, DEFAULT_RUNTIME_BINARY } from '../api/wire.js';
import { globals, int, runtimeBinary, tlsFiles } from './common.js';

export function addServeVerb(program: Command): void {
  program
    .command('serve')
    .description('run the service: embedded containerd (unless --containerd-address), shard workers, API, metrics')
    .option('--data-dir <dir>', 'state of plugind and its embedded containerd', DEFAULT_DATA_DIR)
    .option('--containerd-address <address>', 'use this containerd (unix:///PATH) instead of an embedded one')
    .option('--namespace <ns>', 'containerd namespace for plugins', 'plugind')
    .option('--workers <n>', 'shard worker threads', int('--workers', 1, 256), availableParallelism())
    .option('--metrics-address <host:port>', 'HTTP /metrics, /healthz, /readyz', '127.0.0.1:9464')
    .option('--stop-plugins-on-exit', 'stop every plugin on shutdown (default: leave them running)')
    .option('--init', 'plugins that do not say (run --init / --no-init) get a static init as PID 1')
    .option('--init-path <file>', 'the static init binary', DEFAULT_INIT_PATH)
    .option('--runtime-binary <name|path>', "OCI runtime run by runc's shim for plugins that do not say (crun, say)", runtimeBinary, DEFAULT_RUNTIME_BINARY)
    .option('--group <group>', 'API socket mode 0660 for this group (default: 0600, root only)')
    .addOption(
      new Option('--stdio <how>', "how plugins' output reaches plugind: pipes (the plugin writes into pipes plugind reads) or fifos (the shim copies it into FIFOs, containerd's usual way)")
        .choices(['pipes', 'fifos'])
        .default('pipes'),
    )
    .action(async (o: {
      dataDir: string;
      containerdAddress?: string;
      namespace: string;
      workers: number;
      metricsAddress: string;
      stopPluginsOnExit?: boolean;
      init?: boolean;
      initPath: string;
      runtimeBinary: string;
      group?: string;
      stdio: 'pipes' | 'fifos';
    }) => {
      // The API address, TLS files and log level are global options (see addGlobalOptions).
      const g = globals();
      const logLevel = g.logLevel ?? 'info';
      const [{ pino }, { Service }] = await Promise.all([import('pino'), import('../api/service.js')]);
      const log = pino({ level: logLevel, base: { service: 'plugind' } });
      const service = new Service({
        dataDir: o.dataDir,
        namespace: o.namespace,
        workers: o.workers,
        metricsAddress: o.metricsAddress,
        stopPluginsOnExit: o.stopPluginsOnExit ?? false,
        init: o.init ?? false,
        initPath: o.initPath,
        runtimeBinary: o.runtimeBinary,
        stdio: o.stdio,
        logLevel,
        testHooks: process.env.PLUGIND_TEST_HOOKS === '1',
        logger: log,
        ...(o.containerdAddress ? { containerdAddress: o.containerdAddress } : {}),
        ...(g.address ? { address: g.address } : {}),
        ...(o.group !== undefined ? { group: o.group } : {}),
        tls: tlsFiles(g),
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
}
