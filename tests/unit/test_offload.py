"""services/common/offload.py: a large output is parsed on a worker thread (the event loop keeps
serving meanwhile), a small one inline; the result is the parser's either way."""

from __future__ import annotations

import asyncio
import threading

from services.common.offload import LARGE_OUTPUT_BYTES, parsed


def test_large_outputs_are_parsed_off_the_event_loop_small_ones_inline():
    def parse(output, suffix):
        return threading.get_ident(), len(output), suffix

    async def scenario():
        loop_thread = threading.get_ident()
        small = await parsed(parse, b"x" * 10, "s")
        large = await parsed(parse, "y" * LARGE_OUTPUT_BYTES, "l")
        return loop_thread, small, large

    loop_thread, small, large = asyncio.run(scenario())
    assert small == (loop_thread, 10, "s")
    assert large[0] != loop_thread and large[1:] == (LARGE_OUTPUT_BYTES, "l")
