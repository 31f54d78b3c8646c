// Create latency layer by layer, at concurrency 1, against a private
// containerd: the executor called in-process, the coordinator (a hop to a
// shard worker thread) called in-process; `npm run bench` adds the gRPC API
// and a client process on top. Separates plugind's own layers from
// containerd's share.   npm run bench:layers -- [--n 100]
import { parseArgs } from 'node:util';
import { Coordinator } from '../src/coordinator/index.js';
import { defaultSpec } from '../src/executor/index.js';
import { startContainerd } from '../test/helpers/containerd.js';
import { startExecutor } from '../test/helpers/executor.js';
import { nowMs, summarize } from './stats.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '100' } } });
const n = Number(values.n);
const h = await startContainerd();
try {
  const r = await startExecutor(h);
  const ex: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = `ex-${i}`;
    const t = nowMs();
    await r.run(id, ['/bin/true']);
    ex.push(nowMs() - t);
    await r.exitOf(id);
    await r.executor.remove(id);
  }
  await r.close();

  const co = new Coordinator({ containerdAddress: h.address, namespace: 'layers', dataDir: h.dir, logLevel: 'warn' });
  await co.start();
  const waits = new Map<string, () => void>();
  co.on('exit', (e) => waits.get(e.id)?.());
  const cl: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = `co-${i}`;
    const exited = new Promise<void>((res) => waits.set(id, res));
    const t = nowMs();
    await co.run(id, defaultSpec({ rootfs: h.rootfs, args: ['/bin/true'], namespace: 'layers', id }));
    cl.push(nowMs() - t);
    await exited;
    await co.remove(id);
  }
  await co.close();
  process.stdout.write(
    `create→started, c=1, n=${n} (ms)\n` +
      `executor in-process:    ${JSON.stringify(summarize(ex))}\n` +
      `coordinator in-process: ${JSON.stringify(summarize(cl))}\n` +
      `reproduce: npm run bench:layers -- --n ${n}\n`,
  );
} finally {
  await h.stop();
}
