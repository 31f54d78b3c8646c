// The plugind command line. `serve` runs the service; the client verbs of
// DESIGN.md (run, ls, inspect, kill, stop, rm, logs, events) come with the
// gRPC API.
import { Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { ContainerdSupervisor, connect } from '../containerd/index.js';

const DEFAULT_DATA_DIR = '/var/lib/plugind';

function parseLevel(value: string): string {
  const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
  if (!levels.includes(value)) throw new InvalidArgumentError(`want one of ${levels.join(', ')}`);
  return value;
}

const program = new Command('plugind').description('Runs plugins as containers through containerd').showHelpAfterError();

program
  .command('serve')
  .description('run the service (for now: the embedded containerd only, until the plugin API lands)')
  .option('--data-dir <dir>', 'where plugind and its embedded containerd keep their state', DEFAULT_DATA_DIR)
  .option('--containerd-address <address>', 'use this containerd (unix:///PATH) instead of an embedded one')
  .option('--namespace <ns>', 'containerd namespace for plugins', 'plugind')
  .option('--log-level <level>', 'trace|debug|info|warn|error', parseLevel, 'info')
  .action(async (opts: { dataDir: string; containerdAddress?: string; namespace: string; logLevel: string }) => {
    const log = pino({ level: opts.logLevel, base: { service: 'plugind' } });
    let supervisor: ContainerdSupervisor | undefined;
    let address = opts.containerdAddress;
    if (!address) {
      supervisor = new ContainerdSupervisor({ dataDir: opts.dataDir, logger: log.child({ component: 'containerd' }) });
      await supervisor.start();
      address = supervisor.address;
    }
    const client = connect({ address, namespace: opts.namespace });
    const v = await client.version();
    log.info({ address, containerd: v.version, embedded: Boolean(supervisor) }, 'containerd ready; the plugin API is not served yet');
    const shutdown = async (signal: string): Promise<void> => {
      log.info({ signal }, 'shutting down');
      client.close();
      await supervisor?.stop();
      process.exit(0);
    };
    process.once('SIGTERM', () => void shutdown('SIGTERM'));
    process.once('SIGINT', () => void shutdown('SIGINT'));
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`plugind: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
