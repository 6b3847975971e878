"""How a server process (a worker, or its writer process) manages its heap once started."""

import gc

# The youngest generation is collected every this many net allocations of objects that
# can form cycles (Python's default: 700). A busy worker has thousands of such objects in
# flight (64 requests' coroutines, frames, dicts, futures), and each collection walked
# them all (bench/RESULTS.md, "Heap settling"). Older generations keep their default
# ratios (10, 10).
YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Call once startup is done: what it made leaves the collector's reach, and young
    objects are collected less often.

    Frozen (gc.freeze), the modules, schemas and compiled statements of startup are never
    walked again: each full collection walked all of it, an event-loop stall every few
    seconds under load (bench P2's p99; bench/RESULTS.md, "Heap settling").
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
