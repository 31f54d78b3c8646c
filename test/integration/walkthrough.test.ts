// The README's walkthrough, run as written: its sh block in one bash, from
// the checkout, against a served plugind found through PLUGIND_ADDRESS (as
// the README tells a user with another data dir). `logs -f` gets its ^C once
// it has printed the ticker's output.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Harness } from '../helpers/containerd.js';
import { REPO, shBlock } from '../helpers/readme.js';
import { leftovers, startServed, until, type Served, type ServedRig } from '../helpers/serve.js';


let rig: ServedRig;
let h: Harness;
let s: Served;
before(async () => {
  rig = await startServed('walk');
  ({ h, s } = rig);
});
after(async () => {
  await rig?.close();
});

/** Children of pid whose command line has every word. */
function childrenWith(pid: number, words: string[]): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]);
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (ppid === pid && words.every((w) => argv.includes(w))) found.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return found;
}

test('the README walkthrough runs as written', async (t) => {
  const rootfs = join(h.dir, 'walk-rootfs');
  const block = shBlock('## Walkthrough').replaceAll('/tmp/rootfs', rootfs);
  const script = join(h.dir, 'walkthrough.sh');
  // set -e: a line that fails fails the test; aliases as in an interactive shell.
  writeFileSync(script, `set -e\nshopt -s expand_aliases\n${block}`);
  // Its own process group: whatever the script left running goes with it when the test ends.
  const bash = spawn('bash', [script], { cwd: REPO, detached: true, env: { ...process.env, PLUGIND_ADDRESS: s.address }, stdio: ['ignore', 'pipe', 'pipe'] });
  const killGroup = (): void => {
    try {
      process.kill(-(bash.pid as number), 'SIGKILL');
    } catch {
      /* all gone */
    }
  };
  process.once('exit', killGroup);
  t.after(killGroup);
  let out = '';
  let err = '';
  bash.stdout.on('data', (b: Buffer) => (out += b.toString()));
  bash.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = once(bash, 'exit');
  const dates = (): number => out.split('\n').filter((l) => /\d\d:\d\d:\d\d/.test(l) && !l.startsWith('{') && !/ticker\s+running/.test(l)).length;
  await until('logs -f to print two ticks', () => dates() >= 2 && childrenWith(bash.pid as number, ['logs', '-f', 'ticker']).length === 1, 60_000);
  for (const pid of childrenWith(bash.pid as number, ['logs', '-f', 'ticker'])) process.kill(pid, 'SIGINT');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0, `walkthrough failed:\n${out}\n${err}`);

  const lines = out.split('\n');
  assert.ok(lines.includes('ticker'), 'run printed the id');
  assert.ok(lines.some((l) => /^ID\s+STATE\s+PID\s+SHARD\s+CREATED\s+EXIT$/.test(l)), 'ls printed its header');
  assert.ok(lines.some((l) => /^ticker\s+running\s+\d+/.test(l)), 'ls showed ticker running');
  const json = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  const inspected = json.find((j) => 'state' in j);
  assert.ok(inspected, out);
  assert.equal(inspected.state, 'stopped');
  assert.equal(inspected.exitStatus, 143, 'SIGTERM reached the shell through --init');
  assert.equal(inspected.restart, 'no');
  assert.equal(inspected.autoRemove, false);
  assert.match(String(inspected.runtimeBinary), /\/runc$/, 'the serve default, runc, found on PATH');
  const exit = json.find((j) => j.id === 'ticker' && !('state' in j));
  assert.ok(exit, `events printed the exit:\n${out}`);
  assert.equal(exit.exitStatus, 143);
  assert.deepEqual(await s.client.list(), [], 'rm removed it');
  assert.deepEqual(await leftovers(rig), []);
});
