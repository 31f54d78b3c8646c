// Plugin logs in the CRI format, through the real CLI and service: the file
// parses with the format's rules (kubelet's, crictl's); `logs` gives back
// the plugin's bytes exactly (stdout to stdout, stderr to stderr, binary,
// partial and long lines joined), -n counts lines, -t times them, --since
// and --until cut by time, --tail-bytes keeps the byte form, -f follows;
// raw files an earlier plugind wrote are still read.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { cliAt, cliBytes, spawnCli } from '../helpers/cli.js';
import { startServed, until, type ServedRig } from '../helpers/serve.js';

let rig: ServedRig;
before(async () => {
  rig = await startServed('logs-cri');
});
after(async () => {
  await rig?.close();
});

const pd = cliAt(() => rig.s.address);
const CRI_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP] /;
const logPath = (id: string): string => (JSON.parse(pd(['inspect', id, '--json']).stdout) as { logPath: string }).logPath;

test('the log file is CRI records of both streams in order; logs gives the bytes back exactly, partial and long lines joined, binary safe', async () => {
  const script = [
    "printf 'out1\\nout2\\n'",
    // Two pipes are read as their data comes: a pause puts one write surely after the other.
    'sleep 0.2',
    "printf 'err1\\n' >&2",
    "printf 'part'",
    'sleep 0.3',
    "printf 'ial joined\\n'",
    "printf '\\000\\001\\377\\r\\n'",
    `head -c 40000 /dev/zero | tr '\\0' L; echo`,
    'exec sleep 1000',
  ].join('; ');
  assert.equal(pd(['run', 'cri', '--rootfs', rig.h.rootfs, '--', 'sh', '-c', script]).code, 0);
  const file = logPath('cri');
  assert.equal(file, join(rig.dataDir, 'plugins', rig.namespace, 'logs', 'cri', 'plugin.log'));
  // All 40,000 L's, and the F record that ends their line last (its P
  // records end in 'L\n' too, and the F may hold only the newline).
  const written = (): boolean => {
    const t = readFileSync(file).toString('latin1');
    return (t.match(/L/g)?.length ?? 0) >= 40000 && / stdout F L*\n$/.test(t);
  };
  await until('all of it written', written, 10_000);
  const lines = readFileSync(file).toString('latin1').split('\n');
  assert.equal(lines.pop(), '', 'ends with a newline');
  for (const l of lines) assert.match(l, CRI_LINE);
  assert.ok(lines.some((l) => / stdout P part$/.test(l)), 'a chunk ending mid-line is a P record');
  assert.ok(lines.filter((l) => / stdout P L+$/.test(l)).length >= 2, 'a 40,000-byte line is split into P records');
  assert.ok(lines.every((l) => l.length <= 40 + (16 << 10)), 'records of at most 16 KiB');
  const streams = lines.map((l) => l.split(' ')[1]);
  assert.ok(streams.indexOf('stderr') > streams.indexOf('stdout'), 'both streams in one file, in order');

  const r = cliBytes(['logs', 'cri'], rig.s.address);
  assert.equal(r.code, 0, r.stderr.toString());
  const want = Buffer.concat([Buffer.from('out1\nout2\npartial joined\n'), Buffer.from([0, 1, 255, 13, 10]), Buffer.from('L'.repeat(40000) + '\n')]);
  assert.ok(r.stdout.equals(want), 'stdout byte for byte');
  assert.equal(r.stderr.toString(), 'err1\n');
  assert.equal(pd(['logs', 'cri', '--stream', 'stderr']).stderr, 'err1\n');
});

test('-n counts lines of both streams; --tail-bytes keeps the last bytes of each stream; -t starts each line with its time; --since and --until cut by time', async () => {
  const n2 = pd(['logs', 'cri', '-n', '2']);
  assert.equal(n2.stdout.length, 40001 + 5);
  assert.ok(n2.stdout.endsWith('L\n'));
  assert.equal(n2.stderr, '');
  assert.equal(pd(['logs', 'cri', '--tail', '0']).stdout, '');
  assert.equal(pd(['logs', 'cri', '-n', 'all']).stdout.length, pd(['logs', 'cri']).stdout.length);
  const bytes = pd(['logs', 'cri', '--tail-bytes', '3']);
  assert.equal(bytes.stdout, 'LL\n');
  assert.equal(bytes.stderr, 'r1\n');
  const t = pd(['logs', 'cri', '-t', '--stream', 'stdout', '-n', '3']);
  const tl = t.stdout.split('\n').slice(0, 1);
  assert.match(tl[0] ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z partial joined$/, 'a joined line gets the time of its first part');
  assert.equal(pd(['logs', 'cri', '--since', new Date(Date.now() + 60_000).toISOString()]).stdout, '', 'nothing written in the future');
  assert.equal(pd(['logs', 'cri', '--until', '1h']).stdout, '', 'nothing written an hour ago');
  assert.equal(pd(['logs', 'cri', '--since', '1h', '--stream', 'stderr']).stderr, 'err1\n');
  assert.equal(pd(['logs', 'cri', '--since', 'tomorrow']).code, 2);
  assert.equal(pd(['logs', 'cri', '-n', '-1']).code, 2);
  assert.equal(pd(['rm', '-f', 'cri']).code, 0);
});

test('logs -f -t -n 20: the last 20 lines, timed, then what comes, until the plugin exits', async () => {
  const gen = 'i=1; while [ $i -le 30 ]; do echo line$i; i=$((i+1)); done; sleep 4; echo late1; echo late2 >&2; sleep 0.5';
  assert.equal(pd(['run', 'follow', '--rootfs', rig.h.rootfs, '--', 'sh', '-c', gen]).code, 0);
  await until('30 lines written', () => readFileSync(logPath('follow'), 'utf8').includes('line30'), 10_000);
  const f = spawnCli(['logs', '-f', '-t', '-n', '20', 'follow'], { address: rig.s.address });
  const { code } = await f.exited;
  assert.equal(code, 0, f.stderr());
  const out = f.stdout().trimEnd().split('\n');
  assert.deepEqual(
    out.map((l) => l.replace(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z /, '')),
    [...Array.from({ length: 20 }, (_, i) => `line${i + 11}`), 'late1'],
    'the last 20 lines, then what came after (late2 on stderr)',
  );
  assert.match(f.stderr(), /^\d{4}-\S+Z late2\n$/);
  assert.ok(out.every((l) => /^\d{4}-\d\d-\d\dT\S+Z line|late/.test(l)));
  assert.equal(pd(['rm', 'follow']).code, 0);
});

test('raw log files an earlier plugind wrote are still read by logs, before the new ones', async () => {
  assert.equal(pd(['run', 'old', '--rootfs', rig.h.rootfs, '--', 'sh', '-c', 'echo new-out; echo new-err >&2']).code, 0);
  await until('old exits', () => rig.exits.some((e) => e.id === 'old'), 10_000);
  const dir = dirname(logPath('old'));
  writeFileSync(join(dir, 'stdout.log.1'), 'older-out\n');
  writeFileSync(join(dir, 'stdout.log'), 'old-out\n');
  writeFileSync(join(dir, 'stderr.log'), 'old-err\n');
  const r = pd(['logs', 'old']);
  assert.equal(r.stdout, 'older-out\nold-out\nnew-out\n');
  assert.equal(r.stderr, 'old-err\nnew-err\n');
  assert.equal(pd(['logs', 'old', '-n', '1', '--stream', 'stdout']).stdout, 'new-out\n');
  assert.equal(pd(['rm', 'old']).code, 0);
});
