// The plugind command: `serve` runs the service; the other verbs are gRPC
// clients of it. Tables for people, --json for machines; errors are one
// line on stderr and a non-zero exit (0 done, 1 failed, 2 usage; run:
// docker's 125, 126, 127). The service (containerd client, piscina,
// prom-client) is loaded by `serve` only: a client verb loads the API
// client and no more. Global options go before or after the verb.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { EXIT_FAILED, EXIT_USAGE, addGlobalOptions } from './common.js';
import { addCompletionVerb } from './completion.js';
import { addImageVerbs } from './images.js';
import { addExecVerb, addOperateVerbs, addStatsVerb } from './operate.js';
import { addPluginVerbs } from './plugins.js';
import { addRunVerb } from './run.js';
import { addServeVerb } from './serve.js';

// package.json is two dirs up from src/cli, three from dist/src/cli.
const pkg = ['../..', '../../..'].map((up) => join(import.meta.dirname, up, 'package.json')).find((f) => existsSync(f));
const VERSION = pkg ? (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version : 'unknown';

const program = new Command('plugind')
  .description('Runs plugins (long-lived helper processes) as containers through containerd')
  .version(VERSION, '-v, --version', "print plugind's version")
  .configureOutput({ outputError: (s, write) => write(s.startsWith('error:') ? `plugind: ${s.slice(7)}` : s) })
  .configureHelp({ showGlobalOptions: true })
  .addHelpText('after', '\nExit codes: 0 done; 1 plugind, containerd or a plugin said no, or plugind could not be reached;\n2 a usage error (a flag or argument refused). run: 125, 126, 127 as docker run (see run --help).')
  // Set before the verbs are added: each verb inherits it. Help and --version exit 0.
  .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE));
addGlobalOptions(program);

addServeVerb(program);
addRunVerb(program);
addPluginVerbs(program);
addImageVerbs(program);
addOperateVerbs(program);
addStatsVerb(program);
addExecVerb(program);
addCompletionVerb(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`plugind: ${err instanceof Error ? err.message : String(err)}\n`);
  // A flag's value refused by the verb itself is a usage error too; plugind's own refusals are 1.
  process.exit(err instanceof InvalidArgumentError ? EXIT_USAGE : EXIT_FAILED);
});
