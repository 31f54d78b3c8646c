// The restart policy's grammar, parsed in one place: the executor checks and
// stores the policy a plugin is run with, the coordinator acts on it.

export type RestartPolicy =
  | { name: 'no' }
  | { name: 'always' }
  | { name: 'unless-stopped' }
  | { name: 'on-failure'; maxRetries: number };

const POLICY_RE = /^(no|always|unless-stopped|on-failure(?::([1-9][0-9]{0,5}))?)$/;

export const RESTART_POLICIES = 'no, on-failure, on-failure:N, always or unless-stopped';

/** docker's names: `no`, `always`, `unless-stopped`, `on-failure` (retries without end) or `on-failure:N`; undefined for anything else. */
export function parseRestartPolicy(text: string): RestartPolicy | undefined {
  const m = POLICY_RE.exec(text);
  if (!m) return undefined;
  if (m[1] === 'no' || m[1] === 'always' || m[1] === 'unless-stopped') return { name: m[1] };
  return { name: 'on-failure', maxRetries: m[2] ? Number(m[2]) : Infinity };
}
