"""A worker's shared-memory region: large event and result payloads cross it instead of the pipe.

The supervisor makes one region per worker (a ``memfd``, supervisor/early_worker.py's ``make_region_fd``), sized
and then sealed so that its size can never change, maps it, and gives the worker the descriptor (inherited, or sent
with a fork request). A large payload is copied into the region and the frame on the pipe only says how many bytes
it holds (shared/protocol.py); small payloads stay in the frame. Each side uses the region only while the other
waits for its frame, so one region serves both directions. Its pages are allocated when first written and stay for
the next payload, so no copy into it pays a page fault twice. The worker is untrusted: the supervisor checks every
length it sends against the region's size (which the seals fix), and never parses what the worker put there, only
posts it.
"""

from __future__ import annotations

import mmap
import os

#: A payload of at least this many bytes goes through the region when it fits; smaller ones are one pipe write.
REGION_MIN_BYTES = 64 * 1024


class PayloadRegion:
    """A mapped region; ``size`` is fixed for its lifetime. The mapping is unmapped when the last view of it is
    gone (a posted response may still be a view of it after its worker is reaped)."""

    def __init__(self, fd: int, size: int) -> None:
        self.size = size
        self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)

    @classmethod
    def attach(cls, fd: int) -> PayloadRegion:
        """Map the region ``fd`` refers to, then close the descriptor: the worker's side (children the handler
        starts must not get it), and the supervisor's for the first worker's, made before ``mmap`` was imported."""
        try:
            return cls(fd, os.fstat(fd).st_size)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Unmap now (the worker's side, e.g. the fork template's region in a forked worker)."""
        self._map.close()

    def fits(self, size: int) -> bool:
        """Whether a payload of ``size`` bytes goes through the region (large enough to gain, small enough to fit)."""
        return REGION_MIN_BYTES <= size <= self.size

    def put(self, payload: bytes | memoryview) -> int:
        """Copy ``payload`` to the start of the region; returns its length."""
        size = len(payload)
        self._map[:size] = payload
        return size

    def view(self, size: int) -> memoryview:
        """The first ``size`` bytes, without a copy. ``size`` must have been checked against :attr:`size`."""
        if not 0 <= size <= self.size:
            raise ValueError(f"{size} bytes do not fit in a region of {self.size} bytes")
        return memoryview(self._map)[:size]
