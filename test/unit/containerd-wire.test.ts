// Pure parts of the containerd layer: error mapping, Any packing, addresses.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  ContainerdError,
  ErrorCode,
  OCI_SPEC_TYPE_URL,
  connect,
  fromGrpcError,
  normalizeAddress,
  packRuncOptions,
  packSpec,
  unpackRuncOptions,
  unpackSpec,
} from '../../src/containerd/index.js';
import { defaultSpec, mergeEnv } from '../../src/executor/spec.js';

function grpcError(code: status, details: string): Error {
  return Object.assign(new Error(`${code} ${status[code]}: ${details}`), { code, details });
}

test('every gRPC status maps to one containerd class, keeping the original as cause', () => {
  const want: Array<[status, ErrorCode]> = [
    [status.NOT_FOUND, ErrorCode.NotFound],
    [status.ALREADY_EXISTS, ErrorCode.AlreadyExists],
    [status.INVALID_ARGUMENT, ErrorCode.InvalidArgument],
    [status.OUT_OF_RANGE, ErrorCode.InvalidArgument],
    [status.FAILED_PRECONDITION, ErrorCode.FailedPrecondition],
    [status.UNAVAILABLE, ErrorCode.Unavailable],
    [status.DEADLINE_EXCEEDED, ErrorCode.DeadlineExceeded],
    [status.CANCELLED, ErrorCode.Canceled],
    [status.INTERNAL, ErrorCode.Unknown],
    [status.UNKNOWN, ErrorCode.Unknown],
  ];
  for (const [code, cls] of want) {
    const original = grpcError(code, 'container "x": not found');
    const err = fromGrpcError(original, 'get container x');
    assert.ok(err instanceof ContainerdError);
    assert.equal(err.code, cls, status[code]);
    assert.equal(err.cause, original);
    // A passed deadline says what it means, not grpc-js's timings.
    const detail = code === status.DEADLINE_EXCEEDED ? 'containerd is not answering' : 'container "x": not found';
    assert.equal(err.message, `get container x: ${detail}`);
  }
  const plain = fromGrpcError(new TypeError('boom'), 'op');
  assert.equal(plain.code, ErrorCode.Unknown);
  const again = fromGrpcError(plain, 'other');
  assert.equal(again, plain, 'already mapped errors pass through');
});

test('OCI spec and runc options pack into the Any shapes containerd expects', () => {
  const spec = defaultSpec({ rootfs: '/r', args: ['a', 'b'] });
  const any = packSpec(spec);
  assert.equal(any.typeUrl, OCI_SPEC_TYPE_URL);
  assert.deepEqual(JSON.parse(Buffer.from(any.value).toString()), spec);
  assert.deepEqual(unpackSpec(any), spec);

  const opts = packRuncOptions({ root: '/run/x', binaryName: 'runc', systemdCgroup: true });
  assert.equal(opts.typeUrl, 'containerd.runc.v1.Options');
  // Hand-encoded: field 6 "runc", field 7 "/run/x", field 9 varint 1.
  const want = Buffer.concat([
    Buffer.from([0x32, 4]),
    Buffer.from('runc'),
    Buffer.from([0x3a, 6]),
    Buffer.from('/run/x'),
    Buffer.from([0x48, 1]),
  ]);
  assert.deepEqual(Buffer.from(opts.value), want);
  assert.deepEqual(unpackRuncOptions(opts), { binaryName: 'runc', root: '/run/x', systemdCgroup: true });
  assert.throws(() => unpackSpec(opts), /not an OCI spec/);
});

test('addresses and namespaces are checked before any connection', () => {
  assert.equal(normalizeAddress('/run/c.sock'), 'unix:///run/c.sock');
  assert.equal(normalizeAddress('unix:///run/c.sock'), 'unix:///run/c.sock');
  assert.throws(() => normalizeAddress('localhost:1234'), (e: unknown) => e instanceof ContainerdError && e.code === ErrorCode.InvalidArgument);
  for (const ns of ['', 'a/b', '-x', 'x-', 'a b', 'n'.repeat(77)]) {
    assert.throws(() => connect({ address: '/x.sock', namespace: ns }), /namespace/, ns);
  }
  connect({ address: '/x.sock', namespace: 'plugind.v1-ok_x' }).close();
});

test('default spec: what runc spec gives, plus plugin defaults', () => {
  const s = defaultSpec({ rootfs: '/r', args: ['sh'], env: ['PATH=/bin', 'A=1'], namespace: 'ns', id: 'p1' });
  assert.equal(s.linux?.cgroupsPath, '/ns/p1');
  assert.deepEqual(s.process.env, ['PATH=/bin', 'A=1']);
  assert.equal(s.process.noNewPrivileges, true);
  assert.equal(s.process.terminal, false);
  assert.deepEqual(
    s.linux?.namespaces?.map((n) => n.type),
    ['pid', 'ipc', 'uts', 'mount'],
  );
  for (const m of ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys']) {
    assert.ok(s.mounts?.some((x) => x.destination === m), m);
  }
  assert.equal(defaultSpec({ rootfs: '/r', args: ['x'], namespace: 'ns', id: 'p', cgroupsPath: '' }).linux?.cgroupsPath, undefined);
  assert.deepEqual(mergeEnv(['A=1', 'B=2'], ['A=3']), ['A=3', 'B=2']);
});
