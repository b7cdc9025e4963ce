"""``derived``: ``functools.cached_property`` without its lock.

A value worked out from a frozen object's fields on first use and kept in its
``__dict__``, where later reads find it before the descriptor (a non-data descriptor).
Python 3.11's ``cached_property`` takes an ``RLock`` on every first read; with thousands
of tensors, graphs and kernels made per step that lock is a measurable share of the run.
rdusim computes in one thread per process, so the lock buys nothing. The value is not a
field: equality, hashing and :func:`rdusim.cache.content_key` do not see it.
"""

from __future__ import annotations

from typing import Any, Callable


class derived:
    """Decorator: ``@derived def nbytes(self): ...`` computed once per object."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value
