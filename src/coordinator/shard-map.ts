// Which shard owns a plugin id: rendezvous (highest random weight) hashing,
// so every thread computes the same answer with no shared table, and
// changing the shard count moves only the ids it must.

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A 32-bit finalizer (murmur3's): spreads id-hash ⊕ shard over all bits. */
function mix(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function shardOf(id: string, shards: number): number {
  if (!Number.isInteger(shards) || shards < 1) throw new RangeError(`shards ${shards}: want a whole number ≥ 1`);
  const base = fnv1a(id);
  let best = 0;
  let bestWeight = -1;
  for (let i = 0; i < shards; i++) {
    const w = mix(base ^ mix(i + 0x9e3779b9));
    if (w > bestWeight) {
      bestWeight = w;
      best = i;
    }
  }
  return best;
}
