"""Extension points: the way one manager calls others without importing them.

The manager that owns a seam declares a ``Hook`` in its own leaf module (``compute/hooks.py``,
``storage/hooks.py``); the managers that join it register their functions in their
``AppConfig.ready()``. So dependencies point one way: the joiner imports the owner's hook
module, the owner never imports the joiner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class Hook(Generic[R]):
    """A named list of functions, called in ``order`` (then registration order)."""

    def __init__(self, name: str, doc: str = "") -> None:
        self.name = name
        self.__doc__ = doc or name
        self._fns: list[tuple[int, int, Callable[..., R]]] = []

    def register(self, fn: Callable[..., R], *, order: int = 100) -> Callable[..., R]:
        """Add ``fn`` (registering the same function twice is a no-op, so ``ready()`` may run again)."""
        if all(f is not fn for _o, _i, f in self._fns):
            self._fns.append((order, len(self._fns), fn))
            self._fns.sort(key=lambda t: (t[0], t[1]))
        return fn

    def functions(self) -> list[Callable[..., R]]:
        return [f for _o, _i, f in self._fns]

    def __call__(self, *args: Any, **kwargs: Any) -> list[R]:
        """Call every registered function; their results in order."""
        return [f(*args, **kwargs) for f in self.functions()]

    def __repr__(self) -> str:
        return f"<Hook {self.name}: {len(self._fns)} registered>"
