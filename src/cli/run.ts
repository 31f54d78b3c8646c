// `plugind run`: a plugin from a rootfs and command, an OCI spec, a Docker
// plugin bundle or a pulled image; its exit codes are docker run's.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { MAX_LOG_FILES, MAX_LOG_SIZE } from '../common/limits.js';
import { collect, fail, int, out, readySeconds, runtimeBinary, withClient } from './common.js';
import { addHealthOptions, healthFromFlags } from './health.js';
import { addResourceOptions, resourcesFromFlags } from './operate.js';

/** docker run's: plugind (or containerd) failed, the command cannot be run, the command was not found. */
export const RUN_FAILED = 125;
export const NOT_EXECUTABLE = 126;
export const NOT_FOUND = 127;

/** The exit code of a failed run: 126 or 127 when the runtime could not start the command, else 125. */
export function runExitCode(message: string): number {
  // runc and crun say `exec: "CMD": executable file not found in $PATH` (or no such file), `…: permission denied`.
  if (/exec(ve)?[:(]|executable file not found/.test(message)) {
    if (/executable file not found|no such file or directory/.test(message)) return NOT_FOUND;
    if (/permission denied|is a directory/.test(message)) return NOT_EXECUTABLE;
  }
  return RUN_FAILED;
}

const EXIT_HELP = `

Exit codes, as docker run's: 0 the plugin started; 125 plugind or containerd refused or failed the run
(bad flags included); 126 the command is not executable; 127 the command was not found.`;

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


export function addRunVerb(program: Command): void {
  addHealthOptions(addResourceOptions(program
    .command('run <id> [command...]')
    .description('create and start a plugin: --rootfs DIR -- CMD ARG..., --spec FILE, or a Docker plugin: --bundle DIR | --image REF [-- ARG...]')
    .option('--rootfs <dir>', 'root filesystem directory')
    .option('--spec <file>', 'OCI runtime spec (JSON)')
    .option('--bundle <dir>', 'Docker plugin bundle: config.json and rootfs/ (see below)')
    .option('--image <ref>', 'Docker plugin image, pulled first (plugind pull REF): its rootfs a snapshot of the image')
    .option('--ready-timeout <seconds>', "with --bundle or --image: how long to wait for the plugin's socket (default 10)", readySeconds)
    .option('-e, --env <K=V>', 'environment variable (repeatable)', collect, [] as string[])
    .option('-d, --detach', 'accepted, as docker takes it: a plugin always runs detached, and run returns once it has started')
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
    .addHelpText('after', BUNDLE_HELP + EXIT_HELP)))
    // A flag commander refuses is a failed run too: 125, as docker's.
    .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : RUN_FAILED))
    .action(async (id: string, command: string[], o: Record<string, unknown>) => {
      try {
        await run(id, command, o);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        fail(message, runExitCode(message));
      }
    });
}

async function run(id: string, command: string[], o: Record<string, unknown>): Promise<void> {
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
  await withClient(async (c) => {
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
}
