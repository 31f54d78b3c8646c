// Runs an embedded containerd for a data dir given as argv[2] and prints
// "ready <containerd pid>"; the test kills this process to leave the
// containerd behind, as a SIGKILLed plugind would.
import { ContainerdSupervisor } from '../../src/containerd/index.js';

const dataDir = process.argv[2];
if (!dataDir) throw new Error('usage: supervise-child DATA_DIR');
const supervisor = new ContainerdSupervisor({ dataDir });
await supervisor.start();
process.stdout.write(`ready ${supervisor.pid}\n`);
setInterval(() => {}, 1 << 30);
