// The README's "Operating plugins" block, run as written in one bash
// against a served plugind (PLUGIND_ADDRESS), with the walkthrough's alias
// and a busybox rootfs where it says /tmp/rootfs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, shBlock } from '../helpers/readme.js';
import { leftovers, startServed, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
before(async () => {
  rig = await startServed('readme-op');
});
after(async () => {
  await rig?.close();
});

test("the README's Operating plugins block runs as written", async () => {
  const block = shBlock('## Operating plugins').replaceAll('/tmp/rootfs', rig.h.rootfs);
  const script = join(rig.h.dir, 'operate.sh');
  writeFileSync(script, `set -e\nshopt -s expand_aliases\nalias plugind='node bin/plugind.js'\n${block}`);
  const r = spawnSync('bash', [script], { cwd: REPO, encoding: 'utf8', timeout: 120_000, env: { ...process.env, PLUGIND_ADDRESS: rig.s.address } });
  assert.equal(r.status, 0, `block failed:\n${r.stdout}\n${r.stderr}`);
  const lines = r.stdout.split('\n');
  assert.deepEqual(lines.filter((l) => l === 'web'), ['web', 'web', 'web'], 'run, update and rm printed the id');
  assert.ok(lines.some((l) => /^ID\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+PIDS$/.test(l)), r.stdout);
  assert.ok(lines.some((l) => /^web\s+\d+\.\d\d%\s+\S+ \/ 128MiB\s+\d+\.\d\d%\s+\d+$/.test(l)), r.stdout);
  const stats = JSON.parse(lines.find((l) => l.startsWith('[')) ?? '[]') as Array<Record<string, unknown>>;
  assert.equal(stats[0]?.memoryLimitBytes, 128 << 20);
  // pids counts the cgroup's tasks (threads too): tini and httpd, and for the
  // moment a health check runs, its exec (runc init, a Go program, and pidof).
  assert.ok(typeof stats[0]?.pids === 'number' && stats[0].pids >= 2, `tini and httpd at least: ${String(stats[0]?.pids)}`);
  assert.ok(lines.some((l) => /^\s*\d+\s+\S+\s+.*httpd -f -p 127.0.0.1:18080/.test(l)), `exec ps showed httpd:\n${r.stdout}`);
  assert.ok(lines.includes('hi'), 'exec --env');
  const inspected = JSON.parse(lines.find((l) => l.startsWith('{')) ?? '{}') as { resources?: unknown; healthCheck?: { cmd: string }; health?: { status: string }; restart?: string };
  assert.deepEqual(inspected.resources, { memoryBytes: 128 << 20, cpus: 0.5, pidsLimit: 100 });
  assert.equal(inspected.healthCheck?.cmd, 'pidof httpd');
  assert.match(inspected.health?.status ?? '', /^(starting|healthy)$/);
  assert.equal(inspected.restart, 'on-failure:3');
  assert.deepEqual(await leftovers(rig), []);
});
