"""CPU-heavy parsing off the event loop: a service's handlers and its gRPC I/O share one loop, so a
parse of a large output (a listing of 20,000 entries, squeue or sacct of thousands of jobs) run on it
holds up every other request of the service for as long as it takes.

`parsed(parse, output, *args)` runs `parse(output, *args)` inline when the output is small (a thread
hop costs more than the parse) and on the default thread pool otherwise: still the same CPU, but the
loop gets the GIL back every switch interval and keeps serving other requests meanwhile. Callers: the
utilities servicer (ls) and the Slurm client (squeue, sacct).

Large parses run one at a time (`heavy_work()`): with the GIL only one of them computes at any moment
anyway, so running several side by side makes none finish sooner, while each holds its whole output
parsed in memory (e.g. 8 users listing ~3,000 jobs at once: ~30 MB more RSS in the compute service).
One after another, the service holds one such parse at a time and each answer is ready no later.
"""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

T = TypeVar("T")

LARGE_OUTPUT_BYTES = 256 * 1024  # ~2,000 ls entries or squeue lines

# The one slot of heavy parsing in this process (see the module docstring). An asyncio.Semaphore binds
# to the running loop on first use, so creating it at import is safe.
_heavy_slot = asyncio.Semaphore(1)


def heavy_work() -> asyncio.Semaphore:
    """`async with heavy_work():` around a large parse and whatever builds on its result, so that the
    parsed records are released before the next large parse starts."""
    return _heavy_slot


async def parsed(parse: Callable[..., T], output: bytes | str, *args) -> T:
    """parse(output, *args), on a worker thread and in the heavy-work slot when `output` is large."""
    if len(output) < LARGE_OUTPUT_BYTES:
        return parse(output, *args)
    async with _heavy_slot:
        return await asyncio.to_thread(parse, output, *args)
