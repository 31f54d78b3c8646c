// A client verb loads the API client and no more: not the containerd layer
// (its protos), nor piscina or prom-client, which only `serve` needs. The
// modules are recorded by an ESM load hook in the CLI's own process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CLI } from '../helpers/cli.js';

const TSX = import.meta.resolve('tsx');
const HOOK = pathToFileURL(join(import.meta.dirname, '../helpers/record-loads.mjs')).href;
const SRC = pathToFileURL(join(import.meta.dirname, '../../src/')).href;
const dir = mkdtempSync(join(tmpdir(), 'plugind-cli-imports-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The modules a node process loaded running `args` (a script and its arguments). */
function loads(name: string, args: string[]): string[] {
  const out = join(dir, name);
  const r = spawnSync(process.execPath, ['--import', TSX, '--import', HOOK, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, RECORD_LOADS: out },
  });
  assert.notEqual(r.status, null, `${args.join(' ')} did not finish: ${r.stderr}`);
  return readFileSync(out, 'utf8').split('\n').filter(Boolean);
}

const heavy = (urls: string[]): string[] =>
  urls.filter((u) => u.startsWith(`${SRC}containerd/`) || /\/node_modules\/(piscina|prom-client)\//.test(u) || u.startsWith(`${SRC}coordinator/`));

test('the recorder sees what the service loads', () => {
  const urls = loads('service', ['--eval', `await import(${JSON.stringify(`${SRC}api/service.ts`)})`]);
  const seen = heavy(urls).join('\n');
  for (const m of ['/src/containerd/index.ts', '/node_modules/piscina/', '/node_modules/prom-client/']) assert.match(seen, new RegExp(m.replaceAll('/', '\\/')));
});

for (const verb of [['ls'], ['inspect', 'p1'], ['logs', 'p1'], ['stop', 'p1']]) {
  test(`plugind ${verb.join(' ')} loads no containerd layer, piscina or prom-client`, () => {
    const urls = loads(verb.join('-'), [CLI, ...verb, '--address', `unix://${join(dir, 'nothing.sock')}`]);
    assert.ok(urls.some((u) => u === `${SRC}api/client.ts`), `the API client was not loaded:\n${urls.join('\n')}`);
    assert.deepEqual(heavy(urls), []);
  });
}
