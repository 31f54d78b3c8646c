import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration } from '../../src/common/duration.js';
import { DEFAULT_HEALTH, healthSettings } from '../../src/common/health.js';

test('durations: seconds as a number, or Go\'s form as docker takes it', () => {
  assert.equal(parseDuration('30'), 30_000);
  assert.equal(parseDuration('0.5'), 500);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('1.5s'), 1500);
  for (const bad of ['', 'soon', '-1', '5 s', '1d', 's', '1s2']) assert.equal(parseDuration(bad), undefined, bad);
  assert.equal(formatDuration(300), '300ms');
  assert.equal(formatDuration(1500), '1.5s');
});

test('health settings: docker\'s defaults; a Docker plugin checked by its socket unless disabled; bad input named by flag', () => {
  assert.deepEqual(healthSettings({ cmd: 'true' }, false), { cmd: 'true', ...DEFAULT_HEALTH });
  assert.equal(healthSettings(undefined, false), undefined);
  assert.deepEqual(healthSettings(undefined, true), { cmd: '', ...DEFAULT_HEALTH });
  assert.equal(healthSettings({ disabled: true }, true), undefined);
  assert.deepEqual(healthSettings({ intervalMs: 1000, retries: 1 }, true), { ...DEFAULT_HEALTH, cmd: '', intervalMs: 1000, retries: 1 });
  assert.throws(() => healthSettings({ cmd: 'true', intervalMs: 0 }, false), /--health-interval 0: want a duration above 0/);
  assert.throws(() => healthSettings({ cmd: 'true', timeoutMs: -5 }, false), /--health-timeout/);
  assert.throws(() => healthSettings({ cmd: 'true', startPeriodMs: Number.NaN }, false), /--health-start-period NaN/);
  assert.doesNotThrow(() => healthSettings({ cmd: 'true', startPeriodMs: 0 }, false));
  assert.throws(() => healthSettings({ cmd: 'true', retries: 1.5 }, false), /--health-retries 1.5/);
  assert.throws(() => healthSettings({ retries: 2 }, false), /need --health-cmd/);
  assert.throws(() => healthSettings({ cmd: 'x'.repeat(3000) }, false), /--health-cmd: 3000 bytes, at most 2048/);
  assert.throws(() => healthSettings({ disabled: true, cmd: 'true' }, true), /--no-healthcheck cannot be combined/);
});
