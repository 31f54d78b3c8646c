// The README's sh blocks, for the tests that run them as written.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '../..');

/** The first sh block after the heading. */
export function shBlock(heading: string, markdown = readFileSync(join(REPO, 'README.md'), 'utf8')): string {
  const from = markdown.indexOf(`\n${heading}\n`);
  assert.ok(from >= 0, `README has ${heading}`);
  const m = /```sh\n([\s\S]*?)```/.exec(markdown.slice(from));
  assert.ok(m, `${heading} has an sh block`);
  return m[1] as string;
}
