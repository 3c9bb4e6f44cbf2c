"""A run records the fields that differ from its preset, so a silent change shows."""

from __future__ import annotations

from qmu_core.config import QMUConfig, preset
from qmu_core.config.overrides import changed_fields, changed_markdown


def test_a_preset_as_it_is_changes_nothing() -> None:
    assert changed_fields(QMUConfig.model_validate({"preset": "default"})) == {}
    assert "None: the run used preset `default` as it is." in changed_markdown(preset("default"))


def test_exactly_the_fields_sent_beside_the_preset_are_listed() -> None:
    # what Prefect's V1 form sent with only "N Shadow" changed (issue 26): two booleans flipped unasked
    sent = {
        "preset": "default",
        "model": {"reupload": False},
        "attack": {"lira_fixed_variance": False, "n_shadow": 4},
        "hardware": {"measure_references": False},
    }
    changed = changed_fields(QMUConfig.model_validate(sent))
    assert changed == {
        "attack.lira_fixed_variance": {"value": False, "preset": True},
        "attack.n_shadow": {"value": 4, "preset": 32},
        "hardware.measure_references": {"value": False, "preset": True},
    }  # model.reupload=false is the preset's own value: not a change
    md = changed_markdown(QMUConfig.model_validate(sent))
    assert "| `hardware.measure_references` | `false` | `true` |" in md


def test_without_a_preset_the_built_in_defaults_are_the_reference() -> None:
    config = QMUConfig.model_validate({"train": {"epochs": 3}})
    assert changed_fields(config) == {"train.epochs": {"value": 3, "preset": 10}}
    assert "the built-in defaults (no preset)" in changed_markdown(config)


def test_a_changed_sampler_kind_lists_its_fields() -> None:
    config = preset("paper_angle", hardware={"sampler": {"kind": "qsim"}})
    changed = changed_fields(config)
    assert changed["hardware.sampler.kind"] == {"value": "qsim", "preset": "emulator"}
    assert changed["hardware.sampler.noise"] == {"value": None, "preset": "processor"}
