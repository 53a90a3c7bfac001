"""One registry style for every pluggable strategy: name -> factory, errors list valid names."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from crowdwatch.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named strategies of one kind (smoothing, detector backend, source kind...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator adding a class or factory under name."""
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = entry
            return entry
        return add

    def get(self, name: str) -> T:
        """The entry for name; ConfigError listing the valid names if there is none."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        return f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}"

    def entries(self) -> list[T]:
        """Every entry, in registration order."""
        return list(self._entries.values())

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
