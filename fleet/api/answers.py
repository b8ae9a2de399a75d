"""Serialized answers built from rows that never change once written, kept per store.

A stored schedule is written once, with its intervals, in one transaction, and never
changed (a new plan is a new version, a new row). Its JSON answer is therefore a
function of the row's identity (id and creation time, which also tells a reused id
apart) and of the request's filter, and can be kept: serving it again is never stale.
Serializing a schedule (about 100 intervals a site) costs more than every other part
of the request, so the dashboard's and schedulers' repeated reads of the current plan
then cost one small query.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable

import sqlalchemy as sa

MAX_BYTES = 32 * 1024 * 1024
"""Most bytes of answers kept per store (least recently used go first)."""


class AnswerCache:
    """A bounded, thread-safe LRU of serialized answers by key."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        """Return the answer kept for ``key``, or None."""
        with self._lock:
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        """Keep ``body`` for ``key`` (an answer larger than the bound is not kept)."""
        if len(body) > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._entries[key] = body
            self._size += len(body)
            while self._size > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._size -= len(dropped)

    def __len__(self) -> int:
        return len(self._entries)


_CACHES: weakref.WeakKeyDictionary[sa.Engine, AnswerCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def for_engine(engine: sa.Engine) -> AnswerCache:
    """Return the answer cache of ``engine``'s store (made on first use)."""
    cache = _CACHES.get(engine)
    if cache is None:
        with _CACHES_LOCK:
            cache = _CACHES.setdefault(engine, AnswerCache())
    return cache
