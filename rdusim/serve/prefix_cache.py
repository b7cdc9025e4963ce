"""Automatic prefix caching of KV blocks (vLLM's "automatic prefix caching").

A full KV block of a prompt is named by a chained hash: the hash of its parent block's
hash and its own tokens, so two requests share a block exactly when they share every
token up to its end. The simulator carries no tokens: a request names its shared prefix
by an id (a system prompt, a conversation's earlier turns) and its length, and block ``i``
of prefix ``p`` hashes ``(hash of block i-1, p, i)`` -- the same chain.

The cache is the bookkeeping of the blocks that outlive their request:

- a block registered by a request whose prefill computed it is *shared*, with a
  reference count of the running requests reading it;
- a shared block no running request reads is *evictable*: it stays cached (a later request
  with the same prefix reuses it without computing it) until its space is needed, then the
  least recently used evictable block goes first (LRU);
- a request that hits a block takes a reference (an evictable block becomes shared again).

The scheduler counts as available (``free``) both the free blocks and the evictable ones
(vLLM does the same: an evictable block is allocatable). After each allocation the
scheduler calls :meth:`PrefixCache.reclaim` with its available count; blocks beyond what
is truly free are taken from the evictable ones, LRU first. So at every moment

    free blocks + evictable blocks + blocks in use (private or shared) = the pool,

with ``free blocks = available - evictable`` never negative (tests/test_prefix_cache.py).
"""

from __future__ import annotations

from collections import OrderedDict


def block_hash(parent: int, prefix: int, index: int) -> int:
    """The chained hash of block ``index`` of prefix ``prefix`` after block ``parent``."""
    return hash((parent, prefix, index))


def chain(prefix: int, blocks: int) -> list[int]:
    """The hashes of the first ``blocks`` full blocks of prefix ``prefix``."""
    out, h = [], 0
    for i in range(blocks):
        h = block_hash(h, prefix, i)
        out.append(h)
    return out


class PrefixCache:
    """Shared and evictable KV blocks, by chained hash."""

    def __init__(self) -> None:
        self.refs: dict[int, int] = {}                 # shared block -> running readers (>= 1)
        self.evictable: OrderedDict[int, None] = OrderedDict()   # readers 0, least recently used first
        self.queried = 0          # prefix blocks looked up
        self.hits = 0             # of which found cached
        self.saved_tokens = 0     # prompt tokens not prefilled thanks to hits
        self.evictions = 0
        self.hit_runs: dict[int, int] = {}   # blocks found cached at one admission -> admissions (energy: rdusim.serve_cost)

    def __len__(self) -> int:
        """Blocks held by the cache (shared or evictable)."""
        return len(self.refs) + len(self.evictable)

    def has(self, h: int) -> bool:
        return h in self.refs or h in self.evictable

    def match(self, hashes: list[int]) -> int:
        """How many leading blocks of ``hashes`` are cached."""
        n = 0
        for h in hashes:
            if not self.has(h):
                break
            n += 1
        return n

    def acquire(self, hashes: list[int]) -> int:
        """A request reads these cached blocks: a reference each. Returns how many were
        evictable (they leave the available count)."""
        if hashes:
            self.hit_runs[len(hashes)] = self.hit_runs.get(len(hashes), 0) + 1
        revived = 0
        for h in hashes:
            if h in self.evictable:
                del self.evictable[h]
                self.refs[h] = 1
                revived += 1
            else:
                self.refs[h] += 1
        return revived

    def register(self, h: int) -> bool:
        """A request's freshly computed block ``h`` becomes shared (one reader: it). False
        if the block is already cached (computed twice at once: the request keeps its copy)."""
        if self.has(h):
            return False
        self.refs[h] = 1
        return True

    def release(self, hashes: list[int]) -> int:
        """A request stops reading these blocks. Returns how many became evictable (they
        join the available count); released in reverse so a prefix's tail goes first."""
        freed = 0
        for h in reversed(hashes):
            r = self.refs[h] - 1
            if r:
                self.refs[h] = r
            else:
                del self.refs[h]
                self.evictable[h] = None
                freed += 1
        return freed

    def reclaim(self, available: int) -> None:
        """Evict LRU blocks until the evictable ones fit in ``available`` (free + evictable
        as the scheduler counts them): what an allocation took beyond the free blocks."""
        if available < 0:
            raise RuntimeError(f"prefix cache: {available} blocks available (more allocated than the pool)")
        while len(self.evictable) > available:
            self.evictable.popitem(last=False)
            self.evictions += 1
