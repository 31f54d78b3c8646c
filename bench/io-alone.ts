// The copy path alone: K writers (`head -c B /dev/zero`, 4 KiB writes, as
// the stdio mode's plugins) into FIFOs that PluginIO reads into CRI log
// files, in this process, without containerd or shims. Prints this
// process's user+sys CPU, MB/s and the log files' bytes (content and
// record headers): a steadier figure for the copy path than the whole
// stdio mode, whose run-to-run spread here is ±20 %.
//
//   node --import tsx bench/io-alone.ts [K] [BYTES]
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openReadEnd } from '../src/executor/fifo.js';
import { mkfifoSync } from '../src/executor/libc.js';
import { PluginIO } from '../src/executor/stdio.js';

const k = Number(process.argv[2] ?? 20);
const bytes = Number(process.argv[3] ?? 64 << 20);
const root = mkdtempSync(join(tmpdir(), 'pd-io-'));
try {
  const ios: PluginIO[] = [];
  const writers: Promise<unknown>[] = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < k; i++) {
    const dir = join(root, `f${i}`);
    mkdirSync(dir);
    const fifos = { dir, stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') };
    mkfifoSync(fifos.stdout);
    mkfifoSync(fifos.stderr);
    const open = async (): Promise<{ stdout: number; stderr: number }> => ({ stdout: await openReadEnd(fifos.stdout), stderr: await openReadEnd(fifos.stderr) });
    const io = await PluginIO.open(fifos, open, join(root, `log${i}`), { rotation: { maxSize: bytes * 2, maxFiles: 1 } });
    ios.push(io);
    const w = spawn('sh', ['-c', `head -c ${bytes} /dev/zero > ${fifos.stdout}; : > ${fifos.stderr}`], { stdio: 'ignore' });
    writers.push(new Promise((resolve) => w.once('exit', resolve)));
  }
  await Promise.all(writers);
  await Promise.all(ios.map((io) => io.done));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  let total = 0;
  for (let i = 0; i < k; i++) total += statSync(join(root, `log${i}`, 'plugin.log')).size;
  console.log(
    JSON.stringify({ k, bytes, cpu_s: Math.round((cpu.user + cpu.system) / 1e4) / 100, user_s: Math.round(cpu.user / 1e4) / 100, sys_s: Math.round(cpu.system / 1e4) / 100, MBps: Math.round(((k * bytes) / wall / 1e6) * 10) / 10, file_bytes: total }),
  );
} finally {
  rmSync(root, { recursive: true, force: true });
}
