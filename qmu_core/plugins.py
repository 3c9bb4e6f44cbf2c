"""Plug-ins: models, attacks and unlearning methods from other installed packages.

A package registers a plug-in as an entry point of one of the groups in `GROUPS`, for example in
its ``pyproject.toml``::

    [project.entry-points."qmu.models"]
    reupload_ring = "qmu_reupload_plugin:factory"

Safety rule: a plug-in is found only by its *registered name* among the entry points of
installed packages (`importlib.metadata.entry_points`). A name must match `NAME_PATTERN` and be
one of the group's installed names, else `ConfigError`; nothing read from a config, an artifact
or the UI is ever handed to ``import_module`` or ``EntryPoint.load`` except through that lookup,
so a value such as ``"os:system"`` is refused without importing anything. Listing names reads
entry-point metadata only (`installed`); `load` imports the plug-in.

A model plug-in (group ``qmu.models``) is a callable taking the `qmu_core.config.ModelConfig` and
returning a `CircuitModel`: a Cirq circuit on `cirq.LineQubit` s, its input symbols (in feature
order; each is bound to one feature, an angle in [0, pi], as the built-in angle encoding does),
its trainable weight symbols and its read-out observables (the dense head reads one value per
observable). `circuit_model` loads, calls and checks it (`validate`).

An attack plug-in (group ``qmu.attacks``) is a subclass of `qmu_core.attacks.base.Attack`; an
unlearning plug-in (group ``qmu.unlearning``) a subclass of `qmu_core.unlearning.base.Method`.
A config runs them only where it names them (``attack.plugins``, ``unlearn.methods``);
`qmu_core.attacks.plugin` and `qmu_core.unlearning.plugin` load and check them. Their stages'
keys hold the plug-in's `identity` (its package and the digest of its source), so a changed
plug-in recomputes what it made.

This module imports neither TensorFlow nor Cirq at import time (the config imports it to list
the model kinds); `validate` imports Cirq and sympy when called.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from qmu_core.errors import ConfigError

if TYPE_CHECKING:
    import cirq
    import sympy


class ModelSection(Protocol):
    """What this module reads of `qmu_core.config.ModelConfig` (which imports this module: no import back)."""

    @property
    def kind(self) -> str:
        """The model kind: a plug-in's registered name."""
        ...

    def model_dump_json(self) -> str:
        """The section as JSON: the cache key of what its plug-in built."""
        ...


__all__ = [
    "ATTACKS",
    "GROUPS",
    "MAX_PLUGIN_QUBITS",
    "MODELS",
    "NAME_PATTERN",
    "UNLEARNING",
    "CircuitModel",
    "circuit_model",
    "failure",
    "fingerprint",
    "identity",
    "installed",
    "is_model_plugin",
    "load",
    "validate",
]

MODELS = "qmu.models"
"""Entry-point group of model plug-ins."""

ATTACKS = "qmu.attacks"
"""Entry-point group of membership attack plug-ins."""

UNLEARNING = "qmu.unlearning"
"""Entry-point group of unlearning method plug-ins."""

GROUPS: tuple[str, ...] = (MODELS, ATTACKS, UNLEARNING)
"""The entry-point groups QMU reads."""

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")
"""A plug-in's registered name: lower case letters, digits and underscores, starting with a letter."""

MAX_PLUGIN_QUBITS = 16
"""Widest plug-in circuit (the built-in models' limit)."""

_NO_IMPORT = "No module path is ever imported: a plug-in is found only by its registered name."


def _all_entry_points(group: str) -> dict[str, list[EntryPoint]]:
    if group not in GROUPS:
        raise ConfigError(f"Unknown plug-in group {group!r}; QMU reads {', '.join(GROUPS)}.")
    found: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=group):
        if NAME_PATTERN.fullmatch(ep.name):  # any other name is never listed, so never loadable
            found.setdefault(ep.name, []).append(ep)
    return found


def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {name: eps[0] for name, eps in _all_entry_points(group).items()}


def installed(group: str) -> tuple[str, ...]:
    """Registered names of the installed plug-ins of `group`, sorted (metadata only, imports none)."""
    return tuple(sorted(_entry_points(group)))


def _entry(group: str, name: object) -> EntryPoint:
    """The entry point registered as `name` in `group`, else a `ConfigError` listing the installed names."""
    names = installed(group)
    listing = ", ".join(names) if names else "none"
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"{name!r} is not a plug-in name of {group} (a name matches {NAME_PATTERN.pattern}); "
            f"installed: {listing}. {_NO_IMPORT}"
        )
    found = _all_entry_points(group).get(name, [])
    if not found:
        raise ConfigError(
            f"No installed package registers a plug-in {name!r} in {group}; installed: {listing}. "
            f"Install the package that provides it (its entry point in {group}). {_NO_IMPORT}"
        )
    if len({ep.value for ep in found}) > 1:
        owners = ", ".join(f"{ep.dist.name if ep.dist is not None else '?'} ({ep.value})" for ep in found)
        raise ConfigError(
            f"Several installed packages register the plug-in {name!r} in {group}: {owners}; QMU will not guess "
            "which to import. Uninstall all but one."
        )
    return found[0]


def load(group: str, name: object) -> Any:
    """The plug-in registered as `name` in `group` (imports its module).

    Raises:
        ConfigError: For a name that is not one of the group's installed names (nothing is imported),
            or a plug-in whose module fails to import.
    """
    ep = _entry(group, name)
    try:
        return ep.load()
    except (ImportError, AttributeError) as err:
        dist = ep.dist.name if ep.dist is not None else "its package"
        raise ConfigError(f"Plug-in {name!r} of {group} ({dist}) failed to load: {err}") from err


_IDENTITIES: dict[tuple[str, str], str] = {}


def _source_files(module: str) -> list[Path]:
    """The source files of `module`'s top-level package (or module), found without importing it."""
    top = module.partition(".")[0]
    spec = importlib.util.find_spec(top)  # a top-level name: located, not executed
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return sorted(p for d in spec.submodule_search_locations for p in Path(d).rglob("*.py"))
    return [Path(spec.origin)] if spec.origin and Path(spec.origin).is_file() else []


def identity(group: str, name: object) -> str:
    """SHA-256 of the installed plug-in `name` of `group`: its package, version, entry point and source.

    The source is every ``.py`` file of the top-level package its entry point's module is in (read,
    not imported). Stages that run the plug-in put this in their keys (`tasks._stage`), so a new
    version or an edited source recomputes them. Cached per process.

    Raises:
        ConfigError: If `name` is not one of the group's installed names (nothing is imported).
    """
    ep = _entry(group, name)
    key = (group, str(name))
    if key not in _IDENTITIES:
        digest = hashlib.sha256()
        dist = ep.dist
        head = [group, ep.name, ep.value, dist.name if dist else "", dist.version if dist else ""]
        digest.update(json.dumps(head).encode())
        for path in _source_files(ep.module):
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        _IDENTITIES[key] = digest.hexdigest()
    return _IDENTITIES[key]


def failure(group: str, name: str, step: str, err: BaseException) -> ConfigError:
    """The error of a plug-in that raised `err` during `step`, naming the plug-in and its package."""
    try:
        dist = _entry(group, name).dist
    except ConfigError:
        dist = None
    owner = dist.name if dist is not None else "its package"
    field = {MODELS: "model.kind", ATTACKS: "attack.plugins", UNLEARNING: "unlearn.methods"}[group]
    return ConfigError(
        f"Plug-in {name!r} of {group} ({owner}) failed in {step}: {type(err).__name__}: {err}. "
        f"Fix the plug-in, or leave {name!r} out of {field}."
    )


def is_model_plugin(kind: str) -> bool:
    """Whether ``model.kind`` names a model plug-in (not a built-in kind); metadata only."""
    return kind in installed(MODELS)


@dataclass(frozen=True)
class CircuitModel:
    """What a model plug-in's factory returns (module doc).

    Attributes:
        circuit: The circuit, on `cirq.LineQubit` s (at most `MAX_PLUGIN_QUBITS`).
        input_symbols: Input symbols in feature order; feature i, an angle in [0, pi], is bound to
            ``input_symbols[i]`` (a symbol may appear in several gates, e.g. re-uploading).
        weight_symbols: Trainable symbols, in the order of the model's ``theta`` variable.
        readout: Observables (`cirq.PauliString` or `cirq.PauliSum`); the head reads one expectation each.
    """

    circuit: cirq.Circuit
    input_symbols: tuple[sympy.Symbol, ...]
    weight_symbols: tuple[sympy.Symbol, ...]
    readout: tuple[Any, ...]

    @property
    def n_qubits(self) -> int:
        """Qubits the circuit acts on."""
        return len(self.circuit.all_qubits())


def validate(name: str, model: object) -> CircuitModel:
    """`model` if it is a well-formed `CircuitModel` from plug-in `name`.

    Raises:
        ConfigError: Naming the plug-in and what is wrong (types, symbols, qubits, read-out).
    """
    import cirq
    import sympy

    def bad(what: str) -> ConfigError:
        return ConfigError(f"Model plug-in {name!r} returned an unusable model: {what}.")

    if not isinstance(model, CircuitModel):
        raise bad(f"expected a qmu_core.plugins.CircuitModel, got {type(model).__name__}")
    if not isinstance(model.circuit, cirq.Circuit):
        raise bad(f"`circuit` must be a cirq.Circuit, got {type(model.circuit).__name__}")
    for field in ("input_symbols", "weight_symbols", "readout"):
        if not isinstance(getattr(model, field), tuple):
            raise bad(f"`{field}` must be a tuple, got {type(getattr(model, field)).__name__}")
    qubits = model.circuit.all_qubits()
    if not all(isinstance(q, cirq.LineQubit) for q in qubits):
        raise bad(f"every qubit must be a cirq.LineQubit, found {sorted({type(q).__name__ for q in qubits})}")
    if not 1 <= len(qubits) <= MAX_PLUGIN_QUBITS:
        raise bad(f"the circuit acts on {len(qubits)} qubits; 1 to {MAX_PLUGIN_QUBITS} are supported")
    for field in ("input_symbols", "weight_symbols"):
        symbols: Sequence[Any] = getattr(model, field)
        if not all(isinstance(s, sympy.Symbol) for s in symbols):
            raise bad(f"`{field}` must hold sympy.Symbol s only")
        if len(set(symbols)) != len(symbols):
            raise bad(f"`{field}` lists a symbol twice")
    if not model.input_symbols:
        raise bad("it has no input symbols (the circuit would not read the data)")
    both = set(model.input_symbols) & set(model.weight_symbols)
    if both:
        raise bad(f"symbols {sorted(map(str, both))} are both inputs and weights")
    used = cirq.parameter_symbols(model.circuit)
    missing = (set(model.input_symbols) | set(model.weight_symbols)) - used
    if missing:
        raise bad(f"symbols {sorted(map(str, missing))} do not occur in the circuit")
    unbound = used - set(model.input_symbols) - set(model.weight_symbols)
    if unbound:
        raise bad(f"the circuit reads symbols {sorted(map(str, unbound))} that are neither inputs nor weights")
    if not model.readout:
        raise bad("`readout` is empty; the head needs at least one observable")
    for op in model.readout:
        if not isinstance(op, (cirq.PauliString, cirq.PauliSum)):
            raise bad(f"read-out {op!r} is a {type(op).__name__}, not a cirq.PauliString or cirq.PauliSum")
        if not set(op.qubits) <= set(qubits):
            raise bad(f"read-out {op} measures qubits the circuit does not act on")
    return model


_BUILT: dict[tuple[str, str], CircuitModel] = {}
_FINGERPRINTS: dict[tuple[str, str], str] = {}
"""What each (plug-in, model section as JSON) built, checked: a plug-in is called once per config."""


def _built(model: ModelSection) -> CircuitModel:
    key = (model.kind, model.model_dump_json())
    if key not in _BUILT:
        factory = load(MODELS, model.kind)
        try:
            made = factory(model)
        except ConfigError:
            raise
        except Exception as err:
            raise ConfigError(
                f"Model plug-in {model.kind!r} failed to build its circuit: {type(err).__name__}: {err}"
            ) from err
        _BUILT[key] = validate(model.kind, made)
    return _BUILT[key]


def fingerprint(model: ModelSection) -> str:
    """SHA-256 of what the plug-in ``model.kind`` builds for `model` (circuit, symbols, read-out as Cirq JSON).

    The model stages put it in their keys (`tasks._stage`), so a plug-in whose circuit changes
    (a new version, a fix) trains new models instead of reusing ones built from the old circuit.
    """
    import cirq

    key = (model.kind, model.model_dump_json())
    if key not in _FINGERPRINTS:
        built = _built(model)
        parts = [built.circuit, [str(s) for s in built.input_symbols], [str(s) for s in built.weight_symbols]]
        text = cirq.to_json([*parts, list(built.readout)])
        _FINGERPRINTS[key] = hashlib.sha256(text.encode()).hexdigest()
    return _FINGERPRINTS[key]


def circuit_model(model: ModelSection) -> CircuitModel:
    """The checked `CircuitModel` of the model plug-in ``model.kind`` (loads it; cached per config).

    Raises:
        ConfigError: If ``model.kind`` is not an installed model plug-in, or it returns an unusable model.
    """
    return _built(model)
