// The told-exits file: survives a reopen, forgets on delete, stays small,
// and ignores a line torn by a kill mid-write.
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReportedExits } from '../../src/coordinator/reported-exits.js';

test('reported exits: kept across reopen, forgotten on delete, compacted, torn line ignored', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-rep-'));
  try {
    const path = join(dir, 'reported-exits');
    const a = new ReportedExits(path);
    a.add('web', 100);
    a.add('db', 0);
    a.add('web', 101);
    a.add('gone', 7);
    a.delete('gone');
    // No close(): a killed plugind does not close it either.
    appendFileSync(path, 'R 55');
    const b = new ReportedExits(path);
    assert.ok(b.has('web', 101));
    assert.ok(!b.has('web', 100));
    assert.ok(b.has('db', 0));
    assert.ok(!b.has('gone', 7));
    assert.equal(readFileSync(path, 'utf8'), 'R 101 web\nR 0 db\n', 'rewritten with the live entries only');
    for (let i = 0; i < 20_000; i++) b.add('churn', i);
    assert.ok(readFileSync(path, 'utf8').split('\n').length < 4200, 'compacted as it grows');
    b.close();
    a.close();
    const c = new ReportedExits(path);
    assert.ok(c.has('churn', 19_999));
    c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
