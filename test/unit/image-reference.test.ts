// References normalize as docker's do: the registry host, docker.io and
// library/ for short names, latest when neither tag nor digest is given;
// bad ones are refused naming what is wrong.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isErrorCode, ErrorCode } from '../../src/common/errors.js';
import { isLoopback, parseReference } from '../../src/images/index.js';

const D = `sha256:${'ab'.repeat(32)}`;

test('names as docker normalizes them', () => {
  const cases: Array<[string, string, string, string]> = [
    ['busybox', 'docker.io', 'library/busybox', 'docker.io/library/busybox:latest'],
    ['vieux/sshfs:next', 'docker.io', 'vieux/sshfs', 'docker.io/vieux/sshfs:next'],
    ['index.docker.io/vieux/sshfs', 'docker.io', 'vieux/sshfs', 'docker.io/vieux/sshfs:latest'],
    ['127.0.0.1:5000/plugins/echo:1', '127.0.0.1:5000', 'plugins/echo', '127.0.0.1:5000/plugins/echo:1'],
    ['localhost/a/b/c', 'localhost', 'a/b/c', 'localhost/a/b/c:latest'],
    ['registry.example:443/x__y.z-w', 'registry.example:443', 'x__y.z-w', 'registry.example:443/x__y.z-w:latest'],
    ['[::1]:5000/p', '[::1]:5000', 'p', '[::1]:5000/p:latest'],
    [`127.0.0.1:5000/p@${D}`, '127.0.0.1:5000', 'p', `127.0.0.1:5000/p@${D}`],
    [`127.0.0.1:5000/p:1@${D}`, '127.0.0.1:5000', 'p', `127.0.0.1:5000/p:1@${D}`],
  ];
  for (const [input, domain, path, name] of cases) {
    const r = parseReference(input);
    assert.deepEqual([r.domain, r.path, r.name], [domain, path, name], input);
  }
  // docker's rule: a first part that is not lowercase is a registry host.
  assert.equal(parseReference('Host/p').domain, 'Host');
  assert.equal(parseReference(`x@${D}`).tag, undefined);
  assert.equal(parseReference(`x@${D}`).digest, D);
});

test('bad references are INVALID_ARGUMENT naming the part', () => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty/],
    ['library/Upper', /repository names are lowercase/],
    ['p:bad tag', /tag "bad tag"/],
    ['p@sha256:abc', /digest "sha256:abc": want sha256:<64 lowercase hex digits>/],
    ['p@md5:abc', /digest/],
    ['host:5000/', /no repository name/],
    ['a//b', /repository "a\/\/b"/],
    ['-a', /repository "library\/-a"/],
    ['bad_host:x:1/p', /registry|tag/],
  ];
  for (const [input, pattern] of cases) {
    assert.throws(() => parseReference(input), (err: Error) => isErrorCode(err, ErrorCode.InvalidArgument) && pattern.test(err.message), input);
  }
});

test('loopback hosts get plain HTTP; others not', () => {
  for (const d of ['127.0.0.1:5000', 'localhost', 'LOCALHOST:1', '127.8.9.10', '[::1]:5000']) assert.ok(isLoopback(d), d);
  for (const d of ['10.0.0.1:5000', 'registry.example', 'docker.io', 'localhost.example', '[::2]:5000']) assert.ok(!isLoopback(d), d);
});
