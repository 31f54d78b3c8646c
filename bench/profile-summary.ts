// Where plugind's CPU time goes: self time by function and by package from
// the V8 .cpuprofile files `npm run bench -- --profile DIR` leaves (one per
// thread). Usage: node --import tsx bench/profile-summary.ts DIR
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: profile-summary DIR');
const byFn = new Map<string, number>();
const byPkg = new Map<string, number>();
let total = 0;
for (const f of readdirSync(dir).filter((x) => x.endsWith('.cpuprofile'))) {
  const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as Profile;
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  let fileTotal = 0;
  p.samples.forEach((id, i) => {
    const n = nodes.get(id);
    const dt = (p.timeDeltas[i] ?? 0) / 1000;
    if (!n || n.callFrame.functionName === '(idle)') return;
    fileTotal += dt;
    const url = n.callFrame.url.replace(/^file:\/\//, '');
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? (url.includes('/src/') || url.includes('/workers/') ? 'plugind' : url ? 'node:' + url.split('/').pop() : n.callFrame.functionName);
    const fn = `${n.callFrame.functionName || '(anon)'} ${url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + dt);
    byPkg.set(pkg, (byPkg.get(pkg) ?? 0) + dt);
  });
  total += fileTotal;
  console.log(`${f}: ${fileTotal.toFixed(0)} ms busy`);
}
const top = (m: Map<string, number>, n: number): string =>
  [...m.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, v]) => `${v.toFixed(0).padStart(7)} ms ${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`)
    .join('\n');
console.log(`\nby package (self time, all threads, ${total.toFixed(0)} ms):\n${top(byPkg, 15)}\n\nby function:\n${top(byFn, 30)}`);
