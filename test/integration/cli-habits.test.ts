// The CLI a docker user already knows, through the real CLI and service:
// global options before the verb, ps and ls -q/--filter/--format, docker's
// short flags, several ids at once, events --filter/--since/--until,
// docker run's exit codes, usage errors exiting 2, completion scripts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { CLI, cli, cliAt } from '../helpers/cli.js';
import { leftovers, startServed, until, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
before(async () => {
  rig = await startServed('habits');
});
after(async () => {
  await rig?.close();
});

const pd = cliAt(() => rig.s.address);
const SLEEP = ['sleep', '1000'];

test('global options before the verb (-a, PLUGIND_ADDRESS) or after it; --version; ps is ls; ls -q, --filter, --format; CREATED as "N seconds ago"', async () => {
  const v = cli(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  assert.equal(pd(['run', 'h-one', '-d', '--rootfs', rig.h.rootfs, '-e', 'A=1', '--', ...SLEEP]).stdout, 'h-one\n');
  assert.equal(cli(['run', 'h-two', '--rootfs', rig.h.rootfs, '--', 'true'], { address: rig.s.address }).code, 0, 'after the verb still');
  await until('h-two exits', () => rig.exits.some((e) => e.id === 'h-two'), 10_000);
  const env = cli(['ps', '-q'], { env: { ...process.env, PLUGIND_ADDRESS: rig.s.address } });
  assert.equal(env.code, 0, env.stderr);
  assert.deepEqual(env.stdout.split('\n').filter(Boolean).sort(), ['h-one', 'h-two']);
  assert.equal(pd(['ls', '-q', '--filter', 'state=running']).stdout, 'h-one\n');
  assert.equal(pd(['ls', '-q', '--filter', 'state=running', '--filter', 'state=stopped', '--filter', 'id=h-t']).stdout, 'h-two\n');
  const json = JSON.parse(pd(['ps', '--format', 'json']).stdout) as Array<{ id: string; createdAt: string }>;
  assert.deepEqual(json.map((p) => p.id), ['h-one', 'h-two']);
  assert.match(json[0]?.createdAt ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'RFC 3339 in JSON');
  const table = pd(['ls']).stdout;
  assert.match(table, /^ID\s+STATE\s+PID\s+SHARD\s+CREATED\s+EXIT$/m);
  assert.match(table, /^h-one\s+running\s+\d+\s+\d\s+(Less than a second|\d+ seconds?) ago\s+-$/m);
  const bad = pd(['ls', '--filter', 'colour=red']);
  assert.equal(bad.code, 2, 'a usage error');
  assert.match(bad.stderr, /--filter colour=red: unknown filter "colour"; want state= or id=/);
  assert.equal(pd(['ls', '--bogus']).code, 2);
});

test('several ids: inspect a b (an array; one id, one object), kill -s, stop -t, rm -f, each printing its id; a failing id said on its own line, exit 1', async () => {
  assert.equal(pd(['run', 'h-three', '--rootfs', rig.h.rootfs, '--init', '--', ...SLEEP]).code, 0);
  const both = JSON.parse(pd(['inspect', 'h-one', 'h-three', '--json']).stdout) as Array<{ id: string }>;
  assert.deepEqual(both.map((p) => p.id), ['h-one', 'h-three']);
  assert.equal((JSON.parse(pd(['inspect', 'h-one', '--json']).stdout) as { id: string }).id, 'h-one');
  const partly = pd(['inspect', 'h-one', 'nosuch', '--json']);
  assert.equal(partly.code, 1);
  assert.match(partly.stderr, /^plugind: plugin nosuch: not found\n$/);
  assert.deepEqual((JSON.parse(partly.stdout) as Array<{ id: string }>).map((p) => p.id), ['h-one']);
  const killed = pd(['kill', '-s', 'HUP', 'h-three', 'nosuch']);
  assert.equal(killed.code, 1);
  assert.equal(killed.stdout, 'h-three\n');
  const stopped = pd(['stop', '-t', '1', 'h-one', 'h-three']);
  assert.equal(stopped.code, 0, stopped.stderr);
  assert.equal(stopped.stdout, 'h-one\nh-three\n');
  assert.equal(pd(['run', 'h-four', '--rootfs', rig.h.rootfs, '--', ...SLEEP]).code, 0);
  const removed = pd(['rm', '-f', 'h-one', 'h-two', 'h-three', 'h-four']);
  assert.equal(removed.code, 0, removed.stderr);
  assert.equal(removed.stdout, 'h-one\nh-two\nh-three\nh-four\n');
  assert.deepEqual(await leftovers(rig), []);
});

test("run's exit codes are docker's: 127 command not found, 126 not executable, 125 plugind's refusal or a bad flag; other verbs' usage errors 2", async () => {
  const notFound = pd(['run', 'h-nf', '--rootfs', rig.h.rootfs, '--', 'no-such-command']);
  assert.equal(notFound.code, 127, notFound.stderr);
  assert.match(notFound.stderr, /no-such-command/);
  const notExec = pd(['run', 'h-ne', '--rootfs', rig.h.rootfs, '--', '/bin']);
  assert.equal(notExec.code, 126, notExec.stderr);
  assert.equal(pd(['run', 'h-bad', '--rootfs', rig.h.rootfs, '--memory', '1x', '--', 'true']).code, 125);
  assert.equal(pd(['run', 'h-bad', '--bogus']).code, 125);
  assert.equal(pd(['run', 'h-bad', '--', 'true']).code, 125, 'no --rootfs: plugind refuses');
  assert.equal(pd(['stop']).code, 2, 'a missing argument');
  assert.equal(pd(['stop', '-t', 'soon', 'x']).code, 2);
  assert.equal(pd(['completion', 'tcsh']).code, 2);
  for (const id of ['h-nf', 'h-ne']) pd(['rm', '-f', id]);
  assert.deepEqual(await leftovers(rig), []);
});

test('events --filter id=X --since 1m replays the exits plugind remembers, live ones follow, --until ends it', async () => {
  assert.equal(pd(['run', 'h-ev', '--rootfs', rig.h.rootfs, '--', 'true']).code, 0);
  assert.equal(pd(['run', 'h-other', '--rootfs', rig.h.rootfs, '--', 'true']).code, 0);
  await until('both exited', () => ['h-ev', 'h-other'].every((id) => rig.exits.some((e) => e.id === id)), 10_000);
  const r = pd(['events', '--json', '-f', 'id=h-ev', '--since', '1m', '--until', '0s']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; exitStatus: number });
  assert.deepEqual(lines.map((e) => [e.id, e.exitStatus]), [['h-ev', 0]]);
  // Unfiltered: these two among the exits of the tests before.
  const all = pd(['events', '--json', '--since', new Date(Date.now() - 60_000).toISOString(), '--until', '0s']);
  const ids = all.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);
  for (const id of ['h-ev', 'h-other']) assert.equal(ids.filter((x) => x === id).length, 1, id);
  assert.equal(pd(['events', '--since', 'yesterday']).code, 2);
  assert.equal(pd(['events', '--filter', 'state=x']).code, 2);
  for (const id of ['h-ev', 'h-other']) pd(['rm', id]);
});

test('completion bash|zsh|fish: scripts that parse; bash completes verbs, flags and plugin ids (through plugind ls -q)', async (t) => {
  const bin = join(rig.h.dir, 'completion-bin');
  mkdirSync(bin, { recursive: true });
  const tsx = import.meta.resolve('tsx');
  writeFileSync(join(bin, 'plugind'), `#!/bin/sh\nexec ${process.execPath} --import ${tsx} ${CLI} "$@"\n`);
  chmodSync(join(bin, 'plugind'), 0o755);
  assert.equal(pd(['run', 'h-comp', '--rootfs', rig.h.rootfs, '--', ...SLEEP]).code, 0);
  const script = cli(['completion', 'bash']).stdout;
  assert.equal(spawnSync('bash', ['-n'], { input: script }).status, 0, 'bash -n');
  const complete = (words: string[]): string[] => {
    const r = spawnSync('bash', ['-c', `eval "$(cat)"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _plugind; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      input: script,
      encoding: 'utf8',
      env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, PLUGIND_ADDRESS: rig.s.address },
    });
    return r.stdout.split('\n').filter(Boolean);
  };
  assert.ok(complete(['plugind', 'ex']).includes('exec'));
  assert.ok(complete(['plugind', 'logs', '--f']).includes('--follow'));
  assert.deepEqual(complete(['plugind', 'stop', 'h-c']), ['h-comp']);
  for (const [shell, check] of [['zsh', ['zsh', '-n']], ['fish', ['fish', '--no-execute']]] as const) {
    const s = cli(['completion', shell]);
    assert.equal(s.code, 0);
    const r = spawnSync(check[0], check.slice(1), { input: s.stdout });
    if (r.error) t.diagnostic(`${shell} not installed: its script not parsed`);
    else assert.equal(r.status, 0, `${shell}: ${String(r.stderr)}`);
  }
  pd(['rm', '-f', 'h-comp']);
});
