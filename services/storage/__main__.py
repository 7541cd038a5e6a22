"""`python -m services.storage`: runs the storage service on its configured loopback address."""

from services.common import glibc_malloc

# Direct streams pass 1 MiB buffers between the event loop, worker threads and gRPC's threads. With
# glibc's defaults the mmap threshold climbs to 1 MiB after the first such buffer is freed, so the
# heap grows with every transfer; a fixed threshold (buffers of 64 KiB and more are mmapped, and
# unmapped when freed) and two arenas (`services.common.glibc_malloc`, for every service) keep it
# flat (peak RSS over two 200 MiB streamed uploads and downloads: 104 MiB with glibc's defaults,
# 87 MiB with these).
glibc_malloc.fix_mmap_threshold(64 * 1024)

from services.common.server import run  # noqa: E402
from services.storage.service import register  # noqa: E402

if __name__ == "__main__":  # not in the staging worker's spawned interpreter
    run("storage", register)
