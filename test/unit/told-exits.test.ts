// The told-exits file: survives a reopen, forgets on delete, stays small,
// ignores a line torn by a kill mid-write, and outlasts a full disk.
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ToldExits } from '../../src/coordinator/told-exits.js';
import { fill, mountTmpfs } from '../helpers/tmpfs.js';

test('told exits: kept across reopen, forgotten on delete, compacted, torn line ignored', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-rep-'));
  try {
    const path = join(dir, 'told-exits');
    const a = new ToldExits(path);
    a.add('web', 100);
    a.add('db', 0);
    a.add('web', 101);
    a.add('gone', 7);
    a.delete('gone');
    // No close(): a killed plugind does not close it either.
    appendFileSync(path, 'R 55');
    const b = new ToldExits(path);
    assert.ok(b.has('web', 101));
    assert.ok(!b.has('web', 100));
    assert.ok(b.has('db', 0));
    assert.ok(!b.has('gone', 7));
    assert.equal(readFileSync(path, 'utf8'), 'R 101 web\nR 0 db\n', 'rewritten with the live entries only');
    for (let i = 0; i < 20_000; i++) b.add('churn', i);
    assert.ok(readFileSync(path, 'utf8').split('\n').length < 4200, 'compacted as it grows');
    b.close();
    a.close();
    const c = new ToldExits(path);
    assert.ok(c.has('churn', 19_999));
    c.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('told exits on a full disk: no throw, kept in memory, said once per episode, written again once there is room', () => {
  const disk = mountTmpfs(1);
  try {
    const path = join(disk.dir, 'told-exits');
    const failures: Array<{ code: string | undefined; first: boolean }> = [];
    const r = new ToldExits(path, (err, first) => failures.push({ code: err.code, first }));
    fill(join(disk.dir, 'filler'));
    // The file's last page has room for a few lines; past it, appends fail.
    for (let i = 0; i < 2000; i++) r.add(`plugin-${i}`, i);
    assert.ok(failures.length > 0, 'appends failed');
    assert.ok(failures.every((f) => f.code === 'ENOSPC'));
    assert.deepEqual(failures.filter((f) => f.first).length, 1, 'one episode');
    assert.ok(r.has('plugin-1999', 1999), 'kept in memory');
    rmSync(join(disk.dir, 'filler'));
    r.add('after', 1);
    r.close();
    assert.ok(new ToldExits(path).has('after', 1), 'written once there is room');
  } finally {
    disk.unmount();
  }
});

test('told exits kept by an earlier plugind (reported-exits) are read once and the old file goes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-told-'));
  try {
    const former = join(dir, 'reported-exits');
    writeFileSync(former, 'R 42 web\nR 7 db\nD db\n');
    const t = new ToldExits(join(dir, 'told-exits'), undefined, former);
    assert.ok(t.has('web', 42));
    assert.ok(!t.has('db', 7));
    assert.ok(!existsSync(former), 'the old file is gone');
    t.close();
    assert.ok(new ToldExits(join(dir, 'told-exits'), undefined, former).has('web', 42), 'kept in the new file');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
