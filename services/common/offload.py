"""CPU-heavy parsing off the event loop: a service's handlers and its gRPC I/O share one loop, so a
parse of a large output (a listing of 20,000 entries, squeue or sacct of thousands of jobs) run on it
holds up every other request of the service for as long as it takes.

`parsed(parse, output, *args)` runs `parse(output, *args)` inline when the output is small (a thread
hop costs more than the parse) and on the default thread pool otherwise: still the same CPU, but the
loop gets the GIL back every switch interval and keeps serving other requests meanwhile. Callers: the
utilities servicer (ls) and the Slurm client (squeue, sacct).
"""

from __future__ import annotations

import asyncio
from typing import Callable, TypeVar

T = TypeVar("T")

LARGE_OUTPUT_BYTES = 256 * 1024  # ~2,000 ls entries or squeue lines


async def parsed(parse: Callable[..., T], output: bytes | str, *args) -> T:
    """parse(output, *args), on a worker thread when `output` is large."""
    if len(output) < LARGE_OUTPUT_BYTES:
        return parse(output, *args)
    return await asyncio.to_thread(parse, output, *args)
