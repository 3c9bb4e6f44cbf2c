"""Named starting points for a config, as plain data (`PRESETS`: tiny, default, paper, ..., device_leak).

A preset is a function returning nested overrides of the defaults (a fresh dict each call), laid
over them with `deep_merge`; `qmu_core.config.preset` builds and validates one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

__all__ = ["PRESETS", "TAGGED_UNIONS", "PresetName", "deep_merge"]

TAGGED_UNIONS = frozenset({"sampler"})
"""Config fields holding one of several section types chosen by their ``kind``."""


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` merged in: nested dicts merge key by key, anything else replaces.

    A tagged union (`TAGGED_UNIONS`: ``hardware.sampler``) whose new ``kind`` differs from the
    base's is replaced whole: the old variant's fields do not belong to the new one.
    """
    out = dict(base)
    for key, value in extra.items():
        old = out.get(key)
        switches = key in TAGGED_UNIONS and isinstance(value, dict) and isinstance(old, dict) and "kind" in value
        if switches and value["kind"] != old.get("kind"):  # type: ignore[union-attr]
            out[key] = value
        elif isinstance(value, dict) and isinstance(old, dict):
            out[key] = deep_merge(old, value)
        else:
            out[key] = value
    return out


def _tiny() -> dict[str, Any]:
    return {
        "data": {
            "dataset": "digits",
            "classes": [0, 1, 4, 7],
            "n_target_train": 120,
            "n_target_holdout": 60,
            "n_shadow_pool": 120,
            "n_test": 60,
        },
        "model": {"n_qubits": 4, "layers": 2},
        "train": {"epochs": 3, "batch_size": 16, "learning_rate": 0.1},
        # U-LiRA off: a smoke test of the plumbing; tests/flows turn it on where they check it
        "attack": {"n_shadow": 2, "max_iter": 300, "ulira_models": 0},
        # a smoke test: one step size (the rule's sweep is tested on its own, tests/qmu_core/unlearning)
        "unlearn": {"max_epochs": 5, "learning_rate": 0.5, "step_scales": [1.0]},
    }


def _default() -> dict[str, Any]:
    """The first run a user sees: the paper's HQNN on a small training set, so it memorizes.

    A model that does not overfit leaks nothing measurable (the basic QNN on 500 digits sits at
    AUC 0.5), and then neither a leak nor its removal can be shown. Five digits (0-4), 250
    training records and 60 Adam epochs make the paper's HQNN architecture (CNN front end, 8-qubit
    amplitude encoding, L = 1) fit its training set exactly while keeping about 0.99 test accuracy.
    The forget set (class 4) then has about 50 records and the held-out set about 50 of the same
    class, enough for the forget-set AUC's CI to answer "leaks?" (docs/methods.md). The candidate
    records are twice the training set, so each of the 32 population reference models trains on
    as many records as the target, with the same recipe; three training seeds; U-LiRA on 8 of the
    reference models. About 7 minutes cold on 2 cores (docs/testing.md).
    """
    return {
        "data": {
            "classes": [0, 1, 2, 3, 4],
            "n_target_train": 250,
            "n_target_holdout": 250,
            "n_shadow_pool": 8,
            "n_test": 300,
        },
        "model": {"kind": "hqnn", "encoding": "amplitude", "n_qubits": 8, "layers": 1, "init": "uniform_pi"},
        "train": {"epochs": 60, "batch_size": 16, "learning_rate": 0.01, "optimizer": "adam"},
        "attack": {"n_shadow": 32, "ulira_models": 8},
        "unlearn": {
            "seeds": 3,
            "learning_rate": 1.0,
            "batch_size": 32,
            "max_epochs": 20,
            "rga_retain_weight": 3.0,
            "salun_learning_rate": 0.3,
        },
    }


def _paper() -> dict[str, Any]:
    return {
        "data": {
            "dataset": "mnist",
            "n_target_train": 1000,
            "n_target_holdout": 500,
            "n_shadow_pool": 500,
            "n_test": 1000,
        },
        "model": {"kind": "basic_qnn", "encoding": "amplitude", "n_qubits": 8, "layers": 10},
        "train": {
            "epochs": 20,
            "batch_size": 32,
            "learning_rate": 0.05,
            "optimizer": "nesterov",
            "loss": "bce_sum",
        },
        "attack": {"n_shadow": 8},
        "unlearn": {"learning_rate": 0.05, "batch_size": 32, "objective": "ascent"},
    }


def _paper_angle() -> dict[str, Any]:
    """The paper's basic QNN with angle encoding.

    Its 80 CNOTs on an 8-qubit ring fit a device, where amplitude encoding needs hundreds of
    routed two-qubit gates (`qmu hardware`, `qmu shots`).
    """
    cfg = _paper()
    cfg["model"] = {**cfg["model"], "encoding": "angle"}
    return cfg


def _device_leak() -> dict[str, Any]:
    """A circuit a device can run that still leaks membership in simulation: `default` with the basic QNN.

    The paper's basic QNN with angle encoding re-uploaded before every layer (8 qubits, L = 10:
    the 80 CNOTs on a ring of `paper_angle`, which `willow_pink` keeps), on MNIST digits 0-4 with
    `default`'s 250 training records, 32 population reference models and three seeds, trained 60
    Adam epochs at learning rate 0.05. Without re-uploading the same model does not memorize
    enough to show a leak (docs/hardware.md has the search). MNIST comes from `data.mnist_path`.
    """
    cfg = _default()
    cfg["data"] = {**cfg["data"], "dataset": "mnist"}
    cfg["model"] = {
        "kind": "basic_qnn",
        "encoding": "angle",
        "reupload": True,
        "n_qubits": 8,
        "layers": 10,
        "init": "uniform_pi",
    }
    cfg["train"] = {**cfg["train"], "learning_rate": 0.05}
    cfg["unlearn"] = {**cfg["unlearn"], "ssd_importance": "fisher"}  # the QFI needs a single encoding layer
    cfg["hardware"] = {"seeds": 3}  # `qmu hardware` judges the deletion on the device over the three seeds
    return cfg


def _paper_hqnn() -> dict[str, Any]:
    cfg = _paper()
    cfg["model"] = {
        "kind": "hqnn",
        "encoding": "amplitude",
        "n_qubits": 8,
        "layers": 1,
        "init": "uniform_pi",
    }
    cfg["train"] = {
        "epochs": 25,
        "batch_size": 8,
        "learning_rate": 0.1,
        "optimizer": "sgd",
        "loss": "cross_entropy",
    }
    cfg["unlearn"] = {"learning_rate": 0.01, "batch_size": 16, "max_epochs": 6, "objective": "ascent"}
    return cfg


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    "tiny": _tiny,
    "default": _default,
    "paper": _paper,
    "paper_hqnn": _paper_hqnn,
    "paper_angle": _paper_angle,
    "device_leak": _device_leak,
}

if TYPE_CHECKING:
    PresetName = str
else:
    PresetName = Literal[tuple(PRESETS)]
"""The named presets (the type of `QMUConfig.preset`)."""
