"""Name -> implementation registries for the pluggable parts (ASR engines, sentiment models, ...)."""

from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class UnknownBackend(LookupError):
    pass


class Registry(Generic[T]):
    """Implementations register by name; modules listed in `lazy` are imported on first
    lookup, so a vendor's heavy dependency loads only when that vendor is chosen."""

    def __init__(self, kind: str, lazy: dict[str, str] | None = None):
        self.kind = kind
        self._items: dict[str, type[T]] = {}
        self._lazy = dict(lazy or {})

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            self._items[name] = cls
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(set(self._items) | set(self._lazy))

    def get(self, name: str) -> type[T]:
        if name not in self._items and name in self._lazy:
            importlib.import_module(self._lazy[name])
        try:
            return self._items[name]
        except KeyError:
            raise UnknownBackend(
                f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())}"
            ) from None
