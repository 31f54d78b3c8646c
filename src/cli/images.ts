// The image verbs of the plugind command: pull, images, rmi.
import { InvalidArgumentError, type Command } from 'commander';
import type { Image } from '../api/client.js';
import { out, table, withClient } from './common.js';
import { PullProgressLine, humanSize } from './pull-progress.js';

function imageJson(i: Image): Record<string, unknown> {
  return { name: i.name, digest: i.digest, mediaType: i.mediaType, size: i.size, createdAt: i.createdAt?.toISOString() ?? null, plugins: i.plugins };
}

/** All of stdin, less the line end a `echo`ed password brings. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Adds pull, images and rmi to the program. */
export function addImageVerbs(program: Command): void {
  program
    .command('pull <ref>')
    .description("fetch a plugin image ([HOST[:PORT]/]NAME[:TAG][@DIGEST]) from its registry into plugind's store")
    .addHelpText(
      'after',
      '\nRegistries are reached over HTTPS, or plain HTTP when on loopback (127.0.0.1, localhost, ::1)\n' +
        'or with --insecure-registry. A reference without a registry host means docker.io. Prints\n' +
        'NAME DIGEST once the image is stored; progress goes to stderr.',
    )
    .option('--insecure-registry', 'plain HTTP to a registry that is not on loopback')
    .option('--username <user>', 'registry user (the password from --password-stdin)')
    .option('--password-stdin', "read the registry user's password from stdin")
    .action(async (ref: string, o: { insecureRegistry?: boolean; username?: string; passwordStdin?: boolean }) => {
      if (o.passwordStdin && !o.username) throw new InvalidArgumentError('--password-stdin needs --username');
      if (o.username && !o.passwordStdin) throw new InvalidArgumentError('--username needs --password-stdin (the password is read from stdin)');
      const password = o.passwordStdin ? await readStdin() : '';
      if (o.passwordStdin && password === '') throw new InvalidArgumentError('--password-stdin: stdin was empty');
      await withClient(async (c) => {
        const line = new PullProgressLine(process.stderr);
        const stream = c.pull(ref, { insecureRegistry: Boolean(o.insecureRegistry), ...(o.username ? { username: o.username, password } : {}) });
        process.once('SIGINT', () => stream.close());
        try {
          for await (const e of stream) {
            line.show(e);
            if (e.image) {
              line.done();
              out(`${e.image.name} ${e.image.digest}\n`);
            }
          }
        } finally {
          line.done();
        }
      });
    });

  program
    .command('images')
    .description('list plugin images, with the plugins that run from each')
    .option('--json', 'print a JSON array')
    .action(async (o: { json?: boolean }) => {
      await withClient(async (c) => {
        const images = await c.images();
        if (o.json) return void out(JSON.stringify(images.map(imageJson)) + '\n');
        const rows = [['REF', 'DIGEST', 'SIZE', 'CREATED', 'PLUGINS']];
        for (const i of images) {
          rows.push([i.name, i.digest.replace(/^(sha256:.{12}).*$/, '$1'), humanSize(i.size), i.createdAt?.toISOString() ?? '-', i.plugins.join(',') || '-']);
        }
        out(table(rows));
      });
    });

  program
    .command('rmi <ref>')
    .description('remove a plugin image (refused while a plugin uses it); its blobs and layers go unless another image shares them')
    .action(async (ref: string) => {
      await withClient(async (c) => {
        await c.removeImage(ref);
      });
    });
}
