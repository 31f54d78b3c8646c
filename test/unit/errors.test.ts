// The shared error predicates match on `code` along the cause chain, and
// forPlugin names a plugin once, by the id it carries, not by message text.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CodedError, ErrorCode, ignoreNotFound, isErrorCode, isNotFound } from '../../src/common/errors.js';
import { ContainerdError } from '../../src/containerd/index.js';
import { PluginError, forPlugin, notFound } from '../../src/executor/errors.js';

test('isErrorCode walks cause, as errdefs unwraps', () => {
  const gone = new ContainerdError(ErrorCode.NotFound, 'get container p1: not found');
  assert.ok(isNotFound(gone));
  assert.ok(isNotFound(new Error('wrapped', { cause: new Error('again', { cause: gone }) })));
  // Rebuilt after a thread hop: a plain object with the code is enough.
  assert.ok(isNotFound({ code: 'NotFound', message: 'x' }));
  assert.ok(!isNotFound(new CodedError(ErrorCode.Unavailable, 'down')));
  assert.ok(!isErrorCode(Object.assign(new Error('errno'), { code: 'ENOENT' }), ErrorCode.NotFound));
  const loop = new Error('loop') as Error & { cause?: unknown };
  loop.cause = loop;
  assert.ok(!isNotFound(loop));
  assert.ok(!isNotFound(undefined));
});

test('ignoreNotFound swallows NotFound only', async () => {
  assert.equal(await Promise.reject(notFound('p1')).catch(ignoreNotFound), undefined);
  const down = new CodedError(ErrorCode.Unavailable, 'down');
  await assert.rejects(Promise.reject(down).catch(ignoreNotFound), (err) => err === down);
});

test('forPlugin names the plugin once, whatever the message says', () => {
  const once = forPlugin('p1', new ContainerdError(ErrorCode.AlreadyExists, 'create container: exists'));
  assert.equal(once.message, 'plugin p1: create container: exists');
  assert.equal(once.code, ErrorCode.AlreadyExists);
  assert.equal(forPlugin('p1', once), once);
  assert.equal(forPlugin('p1', notFound('p1')).message, 'plugin p1: not found');
  // Another plugin's error, even one whose text mentions p1, is prefixed.
  const other = new PluginError(ErrorCode.InvalidArgument, 'spec mentions plugin p1');
  assert.equal(forPlugin('p1', other).message, 'plugin p1: spec mentions plugin p1');
});
