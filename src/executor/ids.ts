// Plugin ids follow containerd's identifier rule; checking them here, before
// any file or RPC is touched, keeps bad ids from half-creating anything.
import { invalidArgument } from './errors.js';

const ID_RE = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
export const MAX_ID_LENGTH = 76;

export function validateId(id: unknown): string {
  if (typeof id !== 'string' || id === '') throw invalidArgument('plugin id is empty');
  const shown = JSON.stringify(id.length > 100 ? id.slice(0, 100) + '…' : id);
  if (id.length > MAX_ID_LENGTH) throw invalidArgument(`plugin id ${shown} is longer than ${MAX_ID_LENGTH} characters`);
  if (!ID_RE.test(id)) {
    throw invalidArgument(`plugin id ${shown} is invalid: use letters, digits and single . _ - between them`);
  }
  return id;
}
