// How a call settled, by error code: one helper for every test that checks
// which code a refusal carries (we match on code, never on message text
// alone).
import assert from 'node:assert/strict';

export interface Settled {
  /** The error's code, or 'OK' when the call succeeded. */
  code: string;
  message: string;
  error?: Error;
}

/** Waits for p (or calls it) and says how it settled; never throws. */
export async function settled(p: Promise<unknown> | (() => unknown)): Promise<Settled> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return { code: String((err as { code?: unknown }).code), message: (err as Error).message, error: err as Error };
  }
  return { code: 'OK', message: '' };
}

/** Asserts that p rejects with code (and a message matching re); returns the error. */
export async function rejectsCode(p: Promise<unknown> | (() => unknown), code: string, re?: RegExp): Promise<Error> {
  const r = await settled(p);
  assert.equal(r.code, code, r.code === 'OK' ? `expected ${code}, the call succeeded` : r.message);
  if (re) assert.match(r.message, re);
  return r.error as Error;
}
