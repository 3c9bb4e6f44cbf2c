"""Attack plug-ins: a membership attack from another installed package (entry point group ``qmu.attacks``).

The contract is the built-in attacks' own (`qmu_core.attacks.base`): the entry point names a
subclass of `Attack`. QMU builds it with ``from_config(attack_section, splits, seed=...)``, asks
`applicable` (``None`` or the reason it cannot run), then ``fit(reference)``, which returns the
fitted attack with a finite `threshold`, and ``score(observations)``, which returns one finite
score per record (higher = more likely a member). Its ``supports`` lists the threat models it
works under and ``online`` whether it needs reference models trained with the audited records.

`plugin_attack` loads the class by its registered name only (`qmu_core.plugins.load`) and wraps
it in `Checked`, which checks every answer and names the plug-in, the fault and the fix in the
error. A run lists the plug-ins it runs in ``attack.plugins``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from qmu_core import plugins
from qmu_core.attacks.base import THREAT_MODELS, Attack, Observations, Reference
from qmu_core.errors import ConfigError, QMUError

if TYPE_CHECKING:
    from qmu_core.config import AttackConfig

__all__ = ["Checked", "attack_class", "plugin_attack"]

_FIX = "Fix the plug-in (the contract: qmu_core.attacks.plugin), or leave it out of attack.plugins."


def _bad(name: str, what: str) -> ConfigError:
    return ConfigError(f"Attack plug-in {name!r} ({plugins.ATTACKS}) is unusable: {what}. {_FIX}")


def _call(name: str, step: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, a plug-in's code: what it raises becomes a `ConfigError` naming it."""
    try:
        return fn(*args, **kwargs)
    except QMUError:  # QMU's own (a cancel, a config error): as it is
        raise
    except Exception as err:
        raise plugins.failure(plugins.ATTACKS, name, step, err) from err


def attack_class(name: str) -> type[Attack]:
    """The `Attack` subclass the installed plug-in `name` registers (imports it), checked.

    Raises:
        ConfigError: If `name` is not an installed attack plug-in (nothing is imported), or it is not an
            `Attack` subclass with valid ``supports``.
    """
    loaded: Any = plugins.load(plugins.ATTACKS, name)
    if not (isinstance(loaded, type) and issubclass(loaded, Attack)):
        raise _bad(name, f"its entry point names {loaded!r}, not a subclass of qmu_core.attacks.base.Attack")
    supports = getattr(loaded, "supports", None)
    if not isinstance(supports, frozenset) or not supports or not supports <= set(THREAT_MODELS):
        raise _bad(name, f"`supports` must be a non-empty frozenset of {', '.join(THREAT_MODELS)}; got {supports!r}")
    if not isinstance(getattr(loaded, "online", None), bool):
        raise _bad(name, f"`online` must be True or False; got {getattr(loaded, 'online', None)!r}")
    return loaded


class Checked(Attack):
    """A plug-in's attack, every answer checked (module doc). Delegates to the plug-in's own instance."""

    def __init__(self, name: str, inner: Attack) -> None:
        self.plugin = name
        self.inner = inner
        self.supports = type(inner).supports  # type: ignore[misc]
        self.online = type(inner).online  # type: ignore[misc]

    def applicable(self, reference: Reference) -> str | None:
        """The plug-in's answer, which must be None or a reason."""
        reason = _call(self.plugin, "applicable", self.inner.applicable, reference)
        if reason is not None and not isinstance(reason, str):
            raise _bad(self.plugin, f"`applicable` returned {reason!r}; return None or the reason it cannot run")
        return reason

    def fit(self, reference: Reference) -> Checked:
        """Fit the plug-in; it must return an `Attack` with a finite float threshold."""
        fitted = _call(self.plugin, "fit", self.inner.fit, reference)
        if not isinstance(fitted, Attack):
            raise _bad(self.plugin, f"`fit` returned {type(fitted).__name__}; return the fitted attack (self)")
        threshold = getattr(fitted, "threshold", None)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
            raise _bad(self.plugin, f"after `fit` its threshold is {threshold!r}; set a finite float (the member call)")
        self.inner = fitted
        self.threshold = float(threshold)
        return self

    def score(self, target: Observations) -> np.ndarray:
        """The plug-in's scores: one finite number per record."""
        raw = _call(self.plugin, "score", self.inner.score, target)
        try:
            scores = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            raise _bad(self.plugin, f"`score` returned {type(raw).__name__}, not numbers") from None
        if scores.shape != (target.n_records,):
            raise _bad(
                self.plugin,
                f"`score` returned shape {scores.shape} for {target.n_records} records; return one score per record",
            )
        if not np.isfinite(scores).all():
            raise _bad(self.plugin, f"`score` returned {int((~np.isfinite(scores)).sum())} non-finite scores")
        return scores


def plugin_attack(name: str, config: AttackConfig, splits: pd.DataFrame, *, seed: int) -> Checked:
    """The unfitted attack of plug-in `name`, built by its ``from_config``, checked (module doc)."""
    cls = attack_class(name)
    built = _call(name, "from_config", cls.from_config, config, splits, seed=seed)
    if not isinstance(built, Attack):
        raise _bad(name, f"`from_config` returned {type(built).__name__}; return an instance of the attack")
    return Checked(name, built)
