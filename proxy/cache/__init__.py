"""The response cache: keys, policy, L1 (in-process LRU), L2 (Redis), coalescing; docs/cache.md."""
