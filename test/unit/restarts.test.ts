// The restart policies' decisions, as docker's restart manager makes them:
// the backoff sequence and its cap, the reset after a long run, on-failure's
// count, what a user stop does, and what plugind's start does with plugins
// found stopped. Times are given, not waited for.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseRestartPolicy } from '../../src/common/restart-policy.js';
import { Restarts, type RestartDecision } from '../../src/coordinator/restarts.js';

const delays = (ds: RestartDecision[]): Array<number | false> => ds.map((d) => (d.restart ? d.delayMs : false));

test('restart policy grammar: docker names; anything else refused', () => {
  assert.deepEqual(parseRestartPolicy('always'), { name: 'always' });
  assert.deepEqual(parseRestartPolicy('unless-stopped'), { name: 'unless-stopped' });
  assert.deepEqual(parseRestartPolicy('on-failure'), { name: 'on-failure', maxRetries: Infinity });
  assert.deepEqual(parseRestartPolicy('on-failure:3'), { name: 'on-failure', maxRetries: 3 });
  for (const bad of ['sometimes', 'on-failure:0', 'on-failure:-1', 'always:2', 'Always', '']) assert.equal(parseRestartPolicy(bad), undefined, bad);
});

test('backoff: 100 ms doubling, capped at a minute, back to 100 ms after a run of 10 s', () => {
  const r = new Restarts();
  r.ran('p', 'always', 0);
  const seq: RestartDecision[] = [];
  // Each run lasts 1 s: no reset.
  for (let i = 0; i < 12; i++) {
    seq.push(r.decide('p', 0, (i + 1) * 1000));
    r.started('p', (i + 1) * 1000);
  }
  assert.deepEqual(delays(seq), [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]);
  assert.equal(r.count('p'), 12);
  // A run of 10 s starts it afresh; the count goes on.
  r.started('p', 100_000);
  const after = r.decide('p', 1, 110_000);
  assert.deepEqual(after, { restart: true, count: 13, delayMs: 100 });
});

test('on-failure:N: only failed exits, N restarts, then exhausted; the count survives in the record', () => {
  const r = new Restarts();
  r.ran('p', 'on-failure:2');
  assert.equal(r.decide('p', 0, Date.now()).restart, false, 'a clean exit is not restarted');
  assert.equal(r.decide('p', 1, Date.now()).restart, true);
  assert.equal(r.decide('p', 1, Date.now()).restart, true);
  assert.deepEqual(r.decide('p', 1, Date.now()), { restart: false, exhausted: true, count: 2 });
  // A plugind started later knows the count from the plugin's labels.
  const later = new Restarts();
  later.learned('p', 'on-failure:2', { restartCount: 2, stoppedByUser: false });
  assert.deepEqual(later.decide('p', 1, Date.now(), true), { restart: false, exhausted: true, count: 2 });
  // A run by the user counts afresh.
  later.ran('p', 'on-failure:2');
  assert.equal(later.decide('p', 1, Date.now()).restart, true);
});

test('a user stop: no restart of the exit it causes, a pending one cancelled; at start only always runs it again', () => {
  for (const policy of ['always', 'unless-stopped', 'on-failure']) {
    const r = new Restarts();
    r.ran('p', policy);
    r.stoppedByUser('p');
    assert.equal(r.decide('p', 137, Date.now()).restart, false, policy);
  }
  const r = new Restarts();
  r.learned('a', 'always', { restartCount: 0, stoppedByUser: true });
  r.learned('u', 'unless-stopped', { restartCount: 0, stoppedByUser: true });
  r.learned('u2', 'unless-stopped', { restartCount: 0, stoppedByUser: false });
  r.learned('f', 'on-failure', { restartCount: 0, stoppedByUser: false });
  r.learned('f0', 'on-failure', { restartCount: 0, stoppedByUser: false });
  r.learned('n', 'no', { restartCount: 0, stoppedByUser: false });
  const at = Date.now();
  assert.equal(r.decide('a', 0, at, true).restart, true, 'always: run again at start, user stop or not');
  assert.equal(r.decide('u', 0, at, true).restart, false, 'unless-stopped: a user stop holds across a plugind restart');
  assert.equal(r.decide('u2', 0, at, true).restart, true, 'unless-stopped: exited by itself');
  assert.equal(r.decide('f', 137, at, true).restart, true, 'on-failure: failed while plugind was away');
  assert.equal(r.decide('f0', 0, at, true).restart, false, 'on-failure: a clean exit');
  assert.equal(r.decide('n', 1, at, true).restart, false);
});

test('a pending restart: shown, cancelled by a user stop or a run, and never decided twice', async () => {
  const r = new Restarts();
  r.ran('p', 'always');
  const d = r.decide('p', 0, Date.now());
  assert.ok(d.restart);
  let ran = 0;
  r.schedule('p', 50, () => ran++);
  assert.ok((r.nextAtMs('p') ?? 0) > Date.now());
  assert.equal(r.count('p'), 0, 'a pending restart is not counted yet');
  assert.equal(r.decide('p', 0, Date.now()).restart, false, 'one pending at a time');
  r.stoppedByUser('p');
  assert.equal(r.nextAtMs('p'), undefined);
  r.ran('p', 'always');
  assert.ok(r.decide('p', 0, Date.now()).restart);
  r.schedule('p', 20, () => ran++);
  r.ran('p', 'always');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(ran, 0, 'cancelled by the stop and by the new run');
  assert.ok(r.decide('p', 0, Date.now()).restart);
  r.schedule('p', 10, () => ran++);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(ran, 1);
  assert.equal(r.count('p'), 1, 'the cancelled restarts never counted');
  assert.equal(r.nextAtMs('p'), undefined);
  r.close();
});
