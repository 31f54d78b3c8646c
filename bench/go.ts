// The Go baseline (../shared/go-baseline): containerd's Go client (gobench)
// and moby's own plugin executor (mobybench), run as binaries against the
// bench's containerd with the flags its run.sh uses.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
export const BASELINE_DIR = join(import.meta.dirname, '../../shared/go-baseline');

export type GoTool = 'gobench' | 'mobybench';

/** Where the binaries are, building them with the baseline's setup.sh if needed. */
export function ensureGoBaseline(log: (s: string) => void): string {
  const state = process.env.GO_BASELINE_STATE ?? '/tmp/go-baseline';
  const bin = join(state, 'bin');
  if (!existsSync(join(bin, 'gobench')) || !existsSync(join(bin, 'mobybench'))) {
    log(`building the Go baseline into ${state} (${BASELINE_DIR}/setup.sh; first time only)`);
    mkdirSync(state, { recursive: true });
    execFileSync(join(BASELINE_DIR, 'setup.sh'), { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, GO_BASELINE_STATE: state } });
  }
  return bin;
}

export interface GoTarget {
  bin: string;
  address: string;
  rootfs: string;
  work: string;
  containerdPid: number;
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
  try {
    const { stdout } = await execFileP(join(t.bin, tool), [...common, '-containerd-pid', String(t.containerdPid), '-label', label, ...args], {
      maxBuffer: 64 << 20,
    });
    const line = stdout.trim().split('\n').pop() ?? '{}';
    return { tool, ...(JSON.parse(line) as Record<string, unknown>), label };
  } catch (err) {
    return { tool, label, ok: 0, errors: 1, error_samples: [String((err as Error).message).slice(0, 500)] };
  }
}
