"""Which model of a run: the one value type that names the models the study compares.

A run trains one model before unlearning (the *target*), retrains an *oracle* without the
deleted records, and applies every unlearning method to the target; with ``unlearn.seeds > 1``
it does all of that once per repeat. `Which` is one of those models, and it alone spells the
names each model goes by:

==================  ============  ===========  =======  =======
model               `model_id`    `phase`      `row`    `short`
==================  ============  ===========  =======  =======
before, repeat 0    target        before       noop     before
oracle, repeat 0    oracle        oracle       retrain  oracle
GA, repeat 0        unlearned-ga  after_ga     ga       ga
GA, repeat 1        unlearned-ga  r1/after_ga  ga       ga
==================  ============  ===========  =======  =======

* `model_id`: the ``model_id`` column of the model's weights and outputs, and the ``which``
  of its facts (the same in every repeat: a repeat changes the seed, not the model's kind);
* `phase`: the audit's name for the model (``phase`` column of the scores and metrics, the keys
  of summary.json's ``models`` and ``repeats``), ``r<k>/`` prefixed in repeat ``k > 0``;
* `row`: the model's row of the comparison (``method`` column): ``noop``, the method, ``retrain``;
* `short`: its column in tables of one repeat (the deletion report's per-record scores).

Everything the code produces is built from a `Which`; nothing cuts these strings apart. The one
exception is the boundary where names come back from stored artifacts: `Which.of_phase` (a run's
metrics and summary.json, the audit's names for the models it is given) and `Which.of_model_id`
(a model artifact's ``model_id`` column). Both are here, next to the rules they invert.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["Role", "Which", "lineup"]

Role = Literal["before", "oracle", "unlearned"]
"""What a model is: the target before unlearning, the retrain oracle, or an unlearned target."""

_PHASE = re.compile(r"(?:r(?P<repeat>[1-9][0-9]*)/)?(?:(?P<fixed>before|oracle)|after_(?P<method>.+))")


@dataclass(frozen=True)
class Which:
    """One model of the study (module doc): its role, its method (unlearned only) and its repeat.

    Build it with `before`, `oracle` or `unlearned`; read its names from the properties.
    """

    role: Role
    method: str = ""
    repeat: int = 0

    def __post_init__(self) -> None:
        if (self.role == "unlearned") != bool(self.method):
            raise ValueError(
                f"Which(role={self.role!r}, method={self.method!r}): an unlearned model has a method, no other does"
            )
        if self.repeat < 0:
            raise ValueError(f"Which: repeat={self.repeat} is negative")

    @classmethod
    def before(cls, repeat: int = 0) -> Which:
        """The target, the model before unlearning."""
        return cls("before", repeat=repeat)

    @classmethod
    def oracle(cls, repeat: int = 0) -> Which:
        """The oracle, retrained without the deleted records."""
        return cls("oracle", repeat=repeat)

    @classmethod
    def unlearned(cls, method: str, repeat: int = 0) -> Which:
        """The target after unlearning method `method`."""
        return cls("unlearned", method=method, repeat=repeat)

    def in_repeat(self, repeat: int) -> Which:
        """The same model in repeat `repeat`."""
        return replace(self, repeat=repeat)

    @property
    def model_id(self) -> str:
        """``target``, ``oracle`` or ``unlearned-<method>`` (the weights' ``model_id``)."""
        return {"before": "target", "oracle": "oracle"}.get(self.role) or f"unlearned-{self.method}"

    @property
    def name(self) -> str:
        """The phase within its repeat: ``before``, ``oracle`` or ``after_<method>``."""
        return f"after_{self.method}" if self.role == "unlearned" else self.role

    @property
    def tag(self) -> str:
        """``r<k>`` in repeat ``k > 0``, empty in repeat 0."""
        return f"r{self.repeat}" if self.repeat else ""

    @property
    def phase(self) -> str:
        """The audit's name: `name`, ``r<k>/`` prefixed in repeat ``k > 0`` (``r1/after_ga``)."""
        return f"{self.tag}/{self.name}" if self.tag else self.name

    @property
    def title(self) -> str:
        """`phase` with a space for the slash (``r1 after_ga``), for task labels."""
        return f"{self.tag} {self.name}" if self.tag else self.name

    @property
    def row(self) -> str:
        """The comparison's row: ``noop`` (before), the method, or ``retrain`` (oracle)."""
        return {"before": "noop", "oracle": "retrain"}.get(self.role) or self.method

    @property
    def short(self) -> str:
        """The column of a one-repeat table: ``before``, the method, or ``oracle``."""
        return self.method or self.role

    @classmethod
    def of_phase(cls, phase: str) -> Which | None:
        """The model a stored phase name denotes (the module's one parsing boundary).

        None for a name outside this vocabulary (a model ``qmu audit`` was given under another name).
        """
        found = _PHASE.fullmatch(phase)
        if found is None:
            return None
        repeat = int(found["repeat"] or 0)
        if found["method"] is not None:
            return cls.unlearned(found["method"], repeat)
        return cls.before(repeat) if found["fixed"] == "before" else cls.oracle(repeat)

    @classmethod
    def of_model_id(cls, model_id: str) -> Which | None:
        """The model (repeat 0) a stored ``model_id`` denotes.

        None for a reference model's (``shadow-<i>``, ``ref-<i>``) or any other name (the
        parsing boundary, as `of_phase`).
        """
        if model_id in ("target", "oracle"):
            return cls.before() if model_id == "target" else cls.oracle()
        method = model_id.removeprefix("unlearned-")
        return cls.unlearned(method) if method and method != model_id else None


def lineup(methods: Sequence[str], repeat: int = 0) -> tuple[Which, ...]:
    """The models of one repeat in the comparison's row order: before, each method, the oracle."""
    return (Which.before(repeat), *(Which.unlearned(m, repeat) for m in methods), Which.oracle(repeat))
