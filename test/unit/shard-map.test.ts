import assert from 'node:assert/strict';
import { test } from 'node:test';
import { shardOf } from '../../src/coordinator/shard-map.js';

test('rendezvous hashing: stable, spread out, and minimal movement when shards grow', () => {
  const ids = Array.from({ length: 4000 }, (_, i) => `plugin-${i}`);
  const counts = [0, 0, 0, 0];
  for (const id of ids) {
    const s = shardOf(id, 4);
    assert.equal(s, shardOf(id, 4));
    counts[s] = (counts[s] ?? 0) + 1;
  }
  for (const c of counts) assert.ok(c > 800 && c < 1200, `uneven: ${counts.join(',')}`);
  // Going from 4 to 5 shards moves only ids that land on the new shard.
  for (const id of ids) {
    const after = shardOf(id, 5);
    if (after !== 4) assert.equal(after, shardOf(id, 4), id);
  }
  assert.equal(shardOf('x', 1), 0);
  assert.throws(() => shardOf('x', 0), RangeError);
});
