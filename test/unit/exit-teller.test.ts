// ExitTeller: an exit event is told as it arrives once a shard has said the
// task is about to start (before the start's reply), not after a failed
// start, and each exit once whichever path brings it.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { ExitLag } from '../../src/coordinator/exit-lag.js';
import { ExitTeller } from '../../src/coordinator/exit-teller.js';
import { ToldExits } from '../../src/coordinator/told-exits.js';
import type { PluginExit } from '../../src/executor/index.js';

test('exit teller: told on arrival once starting is known, not after a failed start, once per exit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-teller-'));
  const told: PluginExit[] = [];
  const histogram = new Histogram({ name: 'lag', help: 'lag', registers: [new Registry()] });
  const teller = new ExitTeller(new ToldExits(join(dir, 'told-exits')), new ExitLag(histogram), (e) => told.push(e));
  const exit = (id: string, pid: number): PluginExit & { eventTimestampMs: number } => ({ id, pid, exitStatus: 0, exitedAt: new Date(), eventTimestampMs: Date.now() });
  try {
    // Unknown task: left to the shard.
    assert.equal(teller.event(exit('a', 10)), false);
    // About to start: told as it arrives.
    teller.newRun('b');
    teller.started('b', 20);
    assert.equal(teller.event(exit('b', 20)), true);
    assert.deepEqual(told.map((e) => e.id), ['b']);
    // The shard's push and the create's reply after it: older news.
    teller.tell(exit('b', 20));
    teller.started('b', 20);
    assert.equal(teller.event(exit('b', 20)), false);
    assert.equal(told.length, 1);
    // A failed start: the exit of its deleted task is not told here.
    teller.newRun('c');
    teller.started('c', 30);
    teller.startFailed('c', 30);
    assert.equal(teller.event(exit('c', 30)), false);
    // Another pid's failure does not touch the task known to run.
    teller.started('d', 40);
    teller.startFailed('d', 41);
    assert.equal(teller.event(exit('d', 40)), true);
    assert.deepEqual(told.map((e) => e.id), ['b', 'd']);
  } finally {
    teller.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
