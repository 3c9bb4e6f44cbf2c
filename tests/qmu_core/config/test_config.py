from __future__ import annotations

import pytest
from pydantic import ValidationError

from qmu_core.config import PRESETS, QMUConfig, derive_seed, preset
from qmu_core.config.overrides import apply_overrides
from qmu_core.errors import ConfigError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_validates(name: str) -> None:
    cfg = preset(name)
    assert isinstance(cfg, QMUConfig)
    assert cfg.data.forget_class in cfg.data.classes


def test_paper_preset_matches_the_paper() -> None:
    cfg = preset("paper")
    assert (cfg.data.dataset, cfg.data.n_target_train, cfg.data.n_target_holdout) == ("mnist", 1000, 500)
    assert cfg.data.classes == tuple(range(10)) and cfg.data.forget_class == 4
    assert (cfg.model.n_qubits, cfg.model.layers, cfg.model.encoding) == (8, 10, "amplitude")
    assert (cfg.train.learning_rate, cfg.train.batch_size, cfg.train.optimizer) == (0.05, 32, "nesterov")


def test_config_is_frozen_and_strict() -> None:
    cfg = QMUConfig()
    with pytest.raises(ValidationError):
        cfg.train.epochs = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        QMUConfig.model_validate({"train": {"epoch": 3}})


def test_every_field_has_a_description() -> None:
    schema = QMUConfig.model_json_schema()
    for name, section in schema["$defs"].items():
        if name == "FeatureSpec":
            continue
        for field, spec in section["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"


def test_overrides_parse_json_and_report_unknown_fields() -> None:
    cfg = apply_overrides(preset("tiny"), ["train.epochs=7", "run.artifact_root=/tmp/x", "data.classes=[1,4]"])
    assert cfg.train.epochs == 7 and str(cfg.run.artifact_root) == "/tmp/x" and cfg.data.classes == (1, 4)
    with pytest.raises(ConfigError, match="not a config field. Known here: epochs"):
        apply_overrides(cfg, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="not a config section"):
        apply_overrides(cfg, ["trian.epochs=3"])
    with pytest.raises(ConfigError, match="has no '='"):
        apply_overrides(cfg, ["train.epochs"])


def test_cross_field_errors_name_both_fields() -> None:
    with pytest.raises(ConfigError, match=r"data.forget_class=11 is not in data.classes"):
        apply_overrides(QMUConfig(), ["data.forget_class=11"])
    with pytest.raises(ConfigError, match="model.reupload=true needs model.encoding='angle'"):
        apply_overrides(QMUConfig(), ["model.encoding=amplitude", "model.reupload=true"])
    # across sections: SSD's QFI importance cannot read a re-uploading circuit (it failed after training, before)
    with pytest.raises(ConfigError, match=r"ssd_importance='qfi' needs model.reupload=false.*ssd_importance=fisher"):
        apply_overrides(QMUConfig(), ["model.reupload=true"])
    fisher = apply_overrides(QMUConfig(), ["model.reupload=true", "unlearn.ssd_importance=fisher"])
    # the device measures training seeds the run trains
    with pytest.raises(ConfigError, match=r"hardware.seeds=3 asks to measure more.*\(unlearn.seeds=1\)"):
        apply_overrides(QMUConfig(), ["hardware.seeds=3"])
    assert apply_overrides(QMUConfig(), ["unlearn.seeds=3", "hardware.seeds=3"]).hardware.seeds == 3
    assert fisher.model.reupload and apply_overrides(fisher, ['unlearn.methods=["ga"]', "unlearn.ssd_importance=qfi"])


def test_angle_circuits_go_to_16_qubits_and_amplitude_ones_to_12() -> None:
    wide = ["model.n_qubits=16", "model.reupload=true", "unlearn.ssd_importance=fisher"]
    assert apply_overrides(QMUConfig(), wide).model.n_qubits == 16
    assert apply_overrides(QMUConfig(), ["model.encoding=amplitude", "model.n_qubits=12"]).model.n_qubits == 12
    with pytest.raises(ConfigError, match=r"amplitude encoding stops at 12 qubits.*encoding='angle' \(up to 16\)"):
        apply_overrides(QMUConfig(), ["model.encoding=amplitude", "model.n_qubits=13"])
    with pytest.raises(ConfigError, match="less than or equal to 16"):
        apply_overrides(QMUConfig(), ["model.n_qubits=17"])


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="tiny"):
        preset("huge")


def test_derived_seeds_are_stable_and_distinct() -> None:
    assert derive_seed(0, "shadow-00") == derive_seed(0, "shadow-00")
    seeds = {derive_seed(0, f"shadow-{i:02d}") for i in range(50)} | {
        derive_seed(0, "target"),
        derive_seed(1, "target"),
    }
    assert len(seeds) == 52
    assert all(0 <= s < 2**31 for s in seeds)


def test_fields_left_out_of_the_dump_can_still_be_set() -> None:
    """Fields a section leaves out of its dump at their legacy value (stage keys) are still known to --set."""
    default = QMUConfig()
    assert "path" not in default.data.model_dump() and "noise_scale" not in default.hardware.sampler.model_dump()
    sets = ["data.dataset=file", "data.path=/data/mine.csv", "data.label_column=y", "hardware.sampler.noise_scale=0.5"]
    cfg = apply_overrides(QMUConfig(), [*sets, "unlearn.finetune_optimizer=train"])
    assert (cfg.data.path, cfg.data.label_column, cfg.hardware.sampler.noise_scale) == ("/data/mine.csv", "y", 0.5)
    assert cfg.unlearn.finetune_optimizer == "train"


def test_a_bad_list_item_is_named_once_and_an_empty_list_still_says_so() -> None:
    from qmu_core.config import validate

    with pytest.raises(ConfigError) as err:
        validate({"unlearn": {"methods": ["os:system"]}}, "this config")
    text = str(err.value)
    assert "unlearn.methods.0: Input should be" in text and "os:system" in text
    assert "at least 1 item" not in text  # not the noise of the list the bad item emptied
    with pytest.raises(ConfigError, match=r"unlearn.methods: Tuple should have at least 1 item"):
        validate({"unlearn": {"methods": []}}, "this config")
