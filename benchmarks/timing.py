"""The stopwatch the benchmark scripts share (imported as a sibling: `python benchmarks/x.py`)."""
import time

import torch


def timed(fn, device: torch.device, repeats: int = 1) -> tuple[float, float]:
    """Best (wall seconds, process CPU seconds) over ``repeats`` calls of ``fn()``, synchronising CUDA
    before and after each call so that queued GPU work is counted."""
    best = None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wc = (time.perf_counter() - t, time.process_time() - c)
        best = wc if best is None or wc[0] < best[0] else best
    return best
