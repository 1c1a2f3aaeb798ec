"""Fan-out of states and events to subscribers that can never stall the publisher.

Each subscriber gets its own bounded queue; when it falls behind, the oldest item is dropped
(latest state wins) and counted. Publishing never awaits.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Subscription(Generic[T]):
    def __init__(self, broadcast: Broadcast[T], maxsize: int, name: str):
        self.name = name
        self.dropped = 0
        self._queue: asyncio.Queue[T] = asyncio.Queue(maxsize=maxsize)
        self._broadcast = broadcast

    def _put(self, item: T) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(item)

    async def get(self) -> T:
        return await self._queue.get()

    def get_nowait(self) -> T:
        return self._queue.get_nowait()

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._broadcast._subs.discard(self)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self._queue.get()


class Broadcast(Generic[T]):
    """Publish to every subscriber without blocking; must be used from the event loop thread."""

    def __init__(self) -> None:
        self._subs: set[Subscription[T]] = set()
        self.latest: T | None = None

    def subscribe(self, maxsize: int = 64, name: str = "") -> Subscription[T]:
        sub: Subscription[T] = Subscription(self, maxsize, name)
        self._subs.add(sub)
        return sub

    def publish(self, item: T) -> None:
        self.latest = item
        for sub in list(self._subs):
            sub._put(item)

    @property
    def subscribers(self) -> int:
        return len(self._subs)


