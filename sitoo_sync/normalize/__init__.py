"""normalize/: pure functions from JSON records to typed rows of declared tables."""

import pyarrow as pa

# Arrow's default pool (mimalloc) keeps memory per thread: with SITOO_CONCURRENCY=32 a
# journal backfill peaked at 714 MB with it and 461 MB with the system allocator, no slower
# (bench --journal-scale). Set before any normalizer builds a table.
pa.set_memory_pool(pa.system_memory_pool())
