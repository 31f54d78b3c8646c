// The Go side of the bench: bench/go/gobench (containerd's Go client) and
// bench/go/mobybench (moby's own plugin executor), built by bench/setup.sh and
// run as binaries against the bench's containerd.
import { execFile, execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
/** Where setup.sh builds (bin/) and the bench writes its results (results/). */
export const BENCH_STATE = process.env.PLUGIND_BENCH_STATE ?? '/var/tmp/plugind-bench';

export type GoTool = 'gobench' | 'mobybench';

/** Runs bench/setup.sh (installs what is missing, rebuilds what is stale) and returns the bin dir. */
export function ensureGoTools(log: (s: string) => void): string {
  log(`bench/setup.sh: Go tools in ${BENCH_STATE}/bin`);
  execFileSync('bash', [join(import.meta.dirname, 'setup.sh')], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, PLUGIND_BENCH_STATE: BENCH_STATE },
  });
  return join(BENCH_STATE, 'bin');
}

export interface GoTarget {
  bin: string;
  address: string;
  rootfs: string;
  work: string;
  containerdPid: number;
  /** The OCI runtime the runc v2 shim runs (its BinaryName): runc or crun. */
  runtimeBinary: string;
}

export async function runGo(
  t: GoTarget,
  tool: GoTool,
  label: string,
  args: string[],
): Promise<Record<string, unknown>> {
  const common =
    tool === 'gobench'
      ? ['-address', t.address, '-namespace', 'bench-go', '-rootfs', t.rootfs, '-runc-root', join(t.work, 'runc-go'), '-fifo-dir', join(t.work, 'fifo-go')]
      : ['-address', t.address, '-namespace', 'bench-plugins.moby', '-rootfs', t.rootfs, '-exec-root', join(t.work, 'moby-exec')];
  const flags = [...common, '-runtime-binary', t.runtimeBinary, '-containerd-pid', String(t.containerdPid), '-label', label, ...args];
  try {
    const { stdout } = await execFileP(join(t.bin, tool), flags, { maxBuffer: 64 << 20 });
    const line = stdout.trim().split('\n').pop() ?? '{}';
    return { tool, ...(JSON.parse(line) as Record<string, unknown>), label };
  } catch (err) {
    return { tool, label, ok: 0, errors: 1, error_samples: [String((err as Error).message).slice(0, 500)] };
  }
}
