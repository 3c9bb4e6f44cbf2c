"""A variant family declared once: a `Catalogue` of name → `Variant`.

Each family (unlearning methods, membership attacks, sampler kinds) has one catalogue next to
its config section, and everything that depends on the family reads it: the section's `Literal`
of names, a stage's key fields, the report's labels, the "did not reach" hints and the lookup of
the implementation. Adding a variant is its module plus one entry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import import_module
from typing import Any, Literal

from pydantic import BaseModel

from qmu_core.errors import ConfigError

__all__ = ["Catalogue", "Variant"]


@dataclass(frozen=True)
class Variant:
    """One variant of a family.

    Attributes:
        title: What the report and the form call it.
        label: Its short name in tables and plot legends (``"GA"``); empty: the variant's name.
        reads: The fields of the family's config section it reads; a stage that runs it is keyed
            by these (`UnlearnConfig.for_stage`), and a test checks that it reads no other.
        hint: What to change when it did not reach its stopping rule (unlearning methods).
        implementation: Where it is implemented, ``"module:attribute"``, imported on first use
            (the modules may import TensorFlow).
        config: Its own config section class (a sampler kind's variant of ``hardware.sampler``).
    """

    title: str
    label: str = ""
    reads: frozenset[str] = frozenset()
    hint: str = ""
    implementation: str | None = None
    config: type[BaseModel] | None = None

    def load(self) -> Any:
        """The implementation (imports its module)."""
        if self.implementation is None:
            raise LookupError(f"{self.title!r} names no implementation.")
        module, _, attribute = self.implementation.partition(":")
        return getattr(import_module(module), attribute)


class Catalogue(Mapping[str, Variant]):
    """The variants of one family, in report order (a read-only mapping name → `Variant`).

    Args:
        family: What a variant is, for messages (``"unlearning method"``).
        entries: Name → variant, in the order reports and forms list them.
    """

    def __init__(self, family: str, entries: Mapping[str, Variant]) -> None:
        self.family = family
        self._entries = dict(entries)

    def __getitem__(self, name: str) -> Variant:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def label(self, name: str) -> str:
        """The short name of variant `name` in tables and plots; `name` itself if it has none or is unknown."""
        entry = self._entries.get(name)
        return (entry.label if entry else "") or name

    @property
    def names(self) -> tuple[str, ...]:
        """Every name, in order."""
        return tuple(self._entries)

    def literal(self) -> Any:
        """``Literal[<every name>]``, the type of a config field that picks one.

        It has the same JSON schema as writing the names out.
        """
        return Literal[self.names]

    def entry(self, name: str) -> Variant:
        """The variant `name`.

        Raises:
            ConfigError: If there is none, listing the choices.
        """
        if name not in self._entries:
            raise ConfigError(f"Unknown {self.family} {name!r}; choose from {', '.join(self._entries)}.")
        return self._entries[name]

    def configs(self) -> dict[str, type[BaseModel]]:
        """Name → config class of every variant (each must have one)."""
        found = {name: v.config for name, v in self._entries.items() if v.config is not None}
        if len(found) != len(self._entries):
            raise LookupError(f"Every {self.family} needs a config class; {set(self._entries) - set(found)} have none.")
        return found

    def title(self, name: str) -> str:
        """The title of `name`, or `name` itself if it is not in the catalogue."""
        found = self._entries.get(name)
        return name if found is None else found.title
