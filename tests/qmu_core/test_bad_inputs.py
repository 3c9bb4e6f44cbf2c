"""Bad inputs are QMUErrors that name the field or file, the bad value and the fix.

Suspicious but allowed inputs are warnings. No training here: every case fails (or warns) up front.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest

from qmu_core.config import PRESETS, AttackConfig, DataConfig, FeatureSpec, QMUConfig, check_artifact_root, preset
from qmu_core.config import run as config_run
from qmu_core.config.overrides import apply_overrides, load_config_file, merge_sections
from qmu_core.datasets import MNIST_HELP, load_dataset
from qmu_core.errors import ArtifactError, ConfigError, DataError
from qmu_core.export import check_out_dir, resolve_model_ref
from qmu_core.membership import shadow_warnings
from qmu_core.splits import split_roles

IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write `array` (uint8) as a gzipped IDX file, as MNIST ships them."""
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return path


def small_mnist(directory: Path, labels: np.ndarray, images: np.ndarray | None = None) -> Path:
    """An MNIST-format directory with 8x8 images (random unless given) and these labels."""
    directory.mkdir(parents=True, exist_ok=True)
    if images is None:
        images = np.random.default_rng(0).integers(1, 256, size=(len(labels), 8, 8))
    write_idx(directory / IMAGES, images)
    write_idx(directory / LABELS, labels)
    return directory


def mnist(path: Path, **kw: object) -> DataConfig:
    return DataConfig.model_validate({"dataset": "mnist", "mnist_path": str(path), **kw})


def copy_pair(dst: Path, images: bytes, labels: bytes) -> Path:
    """A directory holding these bytes under the t10k file names."""
    dst.mkdir()
    (dst / IMAGES).write_bytes(images)
    (dst / LABELS).write_bytes(labels)
    return dst


# ----------------------------------------------------------------------------- MNIST files


def test_truncated_gzip_names_the_file(tmp_path: Path, mnist_dir: Path) -> None:
    images = (mnist_dir / IMAGES).read_bytes()
    d = copy_pair(tmp_path / "m", images[: len(images) // 2], (mnist_dir / LABELS).read_bytes())
    with pytest.raises(DataError, match=rf"MNIST file {d / IMAGES} is a truncated or corrupt gzip file") as err:
        load_dataset(mnist(d))
    assert "Replace it with an intact copy" in str(err.value) and MNIST_HELP in str(err.value)


def test_corrupt_gzip_names_the_file(tmp_path: Path, mnist_dir: Path) -> None:
    images = bytearray((mnist_dir / IMAGES).read_bytes())
    images[len(images) // 2] ^= 0xFF
    d = copy_pair(tmp_path / "m", bytes(images), (mnist_dir / LABELS).read_bytes())
    with pytest.raises(DataError, match=rf"MNIST file {d / IMAGES} is a truncated or corrupt gzip file"):
        load_dataset(mnist(d))


def test_random_bytes_are_not_a_gzip_file(tmp_path: Path, mnist_dir: Path) -> None:
    d = copy_pair(tmp_path / "m", np.random.default_rng(0).bytes(5000), (mnist_dir / LABELS).read_bytes())
    with pytest.raises(DataError, match=rf"MNIST file {d / IMAGES} is not a gzip file") as err:
        load_dataset(mnist(d))
    assert "--set data.mnist_path=DIR" in str(err.value)


def test_swapped_images_and_labels_files(tmp_path: Path, mnist_dir: Path) -> None:
    d = copy_pair(tmp_path / "m", (mnist_dir / LABELS).read_bytes(), (mnist_dir / IMAGES).read_bytes())
    with pytest.raises(DataError, match=r"holds 1-dimensional data, but an IDX images file holds 3") as err:
        load_dataset(mnist(d))
    assert str(d / IMAGES) in str(err.value) and "swapped" in str(err.value)


def test_image_and_label_counts_differ(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    write_idx(d / IMAGES, np.zeros((10, 8, 8)))
    write_idx(d / LABELS, np.zeros(9))
    with pytest.raises(DataError, match=r"\(10 images\) and .*\(9 labels\) do not match") as err:
        load_dataset(mnist(d))
    assert "intact t10k-images/t10k-labels pair" in str(err.value)


def test_idx_payload_shorter_than_its_header_says(tmp_path: Path) -> None:
    d = small_mnist(tmp_path / "m", np.zeros(4))
    raw = gzip.decompress((d / IMAGES).read_bytes())
    (d / IMAGES).write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(DataError, match=rf"MNIST file {d / IMAGES} is truncated: its header says \(4, 8, 8\)"):
        load_dataset(mnist(d))


def test_nan_pixels_are_a_data_error(tmp_path: Path) -> None:
    x = np.full((6, 4, 4), 128.0)
    x[1, 0, 0] = np.nan
    x[4, 2, 2] = np.inf
    y = np.arange(6) % 2
    np.savez(tmp_path / "mnist.npz", x_train=x[:3], y_train=y[:3], x_test=x[3:], y_test=y[3:])
    with pytest.raises(
        DataError, match=r"mnist.npz from .*: 2 of 6 images have NaN or infinite pixels \(records 1, 4\)"
    ):
        load_dataset(mnist(tmp_path))


def test_npz_with_wrong_shapes(tmp_path: Path) -> None:
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((3, 4)), y_train=np.zeros(3), x_test=np.zeros((1, 4)), y_test=[0])
    with pytest.raises(DataError, match=r"expected \(N, side, side\) images and N labels"):
        load_dataset(mnist(tmp_path))


# ----------------------------------------------------------------------------- classes


def test_classes_missing_from_the_dataset_fail_at_split_time(tmp_path: Path) -> None:
    d = small_mnist(tmp_path / "m", np.arange(40) % 4)
    sizes = {"n_target_train": 8, "n_target_holdout": 4, "n_shadow_pool": 8, "n_test": 4}
    data = mnist(d, classes=[0, 1, 5, 9], forget_class=0, **sizes)
    with pytest.raises(
        DataError, match=r"data.classes=\[0, 1, 5, 9\] asks for labels \[5, 9\] that .* does not have"
    ) as err:
        split_roles(data, FeatureSpec(n_components=4), seed=0)
    assert "(its labels: [0, 1, 2, 3])" in str(err.value) and "Remove them from data.classes" in str(err.value)


def test_classes_the_builtin_datasets_lack_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"has labels \[99\] that data.dataset='digits' does not have"):
        apply_overrides(QMUConfig(), ["data.classes=[0,1,4,99]"])
    with pytest.raises(ConfigError, match=r"negative labels \[-1\]"):
        apply_overrides(QMUConfig(), ["data.classes=[-1,4]"])


def test_constant_images_are_a_warning(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(1, 256, size=(40, 8, 8))
    images[::2] = 0  # every other image all black
    d = small_mnist(tmp_path / "m", np.arange(40) % 2, images)
    data = mnist(d, classes=[0, 1], forget_class=1, n_target_train=8, n_target_holdout=4, n_shadow_pool=8, n_test=4)
    out = split_roles(data, FeatureSpec(n_components=4), seed=0)
    assert len(out.warnings) == 1
    assert "of 24 records drawn from mnist idx" in out.warnings[0]
    assert "have a constant image (every pixel the same, e.g. all black)" in out.warnings[0]


def test_ordinary_splits_have_no_warnings() -> None:
    out = split_roles(preset("tiny").data, FeatureSpec(n_components=4), seed=0)
    assert out.warnings == ()


# ----------------------------------------------------------------------------- shadow pool


def test_too_small_a_shadow_pool_is_a_warning() -> None:
    cfg = apply_overrides(preset("tiny"), ["data.n_shadow_pool=10", "attack.reference=disjoint"])
    (message,) = shadow_warnings(cfg.data, cfg.attack)
    assert message.startswith("each of the attack.n_shadow=2 reference models trains on 5 records")
    assert "1.2 per class for 4 classes" in message and "Raise data.n_shadow_pool to at least 16" in message


def test_shadows_much_smaller_than_the_target_are_a_warning() -> None:
    data = DataConfig(n_target_train=1000, n_shadow_pool=700)
    (message,) = shadow_warnings(data, AttackConfig(reference="disjoint"))
    assert "under half of the target's data.n_target_train=1000" in message
    assert "Raise data.n_shadow_pool to at least 1000" in message


def test_population_reference_models_draw_from_every_candidate() -> None:
    data = DataConfig(n_target_train=1000, n_target_holdout=500, n_shadow_pool=100)
    assert shadow_warnings(data, AttackConfig(reference="population")) == []  # 800 records each
    assert shadow_warnings(data, AttackConfig(reference="disjoint"))  # 50 records each


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_raise_no_shadow_warning(name: str) -> None:
    cfg = preset(name)
    assert shadow_warnings(cfg.data, cfg.attack) == []


# ----------------------------------------------------------------------------- config values


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("train.epochs=true", r"train.epochs: Input should be a valid integer \(got true\); write a whole number"),
        ("train.epochs=3.0", r"train.epochs: Input should be a valid integer \(got 3.0\)"),
        ('train.epochs="3"', r'train.epochs: Input should be a valid integer \(got "3"\)'),
        ("model.reupload=1", r"model.reupload: Input should be a valid boolean \(got 1\); write true or false"),
        ("train.learning_rate=false", r"train.learning_rate: Input should be a valid number \(got false\)"),
        ("data.classes=[0,true,4]", r"data.classes.1: Input should be a valid integer \(got true\)"),
    ],
)
def test_numbers_and_switches_are_strict(assignment: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        apply_overrides(QMUConfig(), [assignment])


def test_json_numbers_still_work_for_number_fields() -> None:
    numbers = ["train.learning_rate=1", "train.epochs=3", "model.reupload=true", "unlearn.ssd_importance=fisher"]
    cfg = apply_overrides(QMUConfig(), numbers)
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float) and cfg.train.epochs == 3
    # what the Prefect UI sends: parsed JSON, ints given as ints
    ui = QMUConfig.model_validate(
        json.loads('{"train": {"learning_rate": 1, "epochs": 4}, "data": {"classes": [0, 4]}}')
    )
    assert (ui.train.learning_rate, ui.train.epochs, ui.data.classes) == (1.0, 4, (0, 4))


def test_set_of_a_section_object_merges_into_it() -> None:
    cfg = apply_overrides(preset("tiny"), ['data={"n_test": 50}'])
    assert cfg.data.n_test == 50 and cfg.data.classes == (0, 1, 4, 7) and cfg.data.n_target_train == 120
    with pytest.raises(ConfigError, match=r"data.n_tset: Extra inputs are not permitted \(got 5\)"):
        apply_overrides(preset("tiny"), ['data={"n_tset": 5}'])


# ----------------------------------------------------------------------------- config files


def test_config_file_holding_a_list(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"expected a JSON object .* but it holds a JSON list \(\[1, 2\]\)"):
        load_config_file(path)


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'{"train": {"epochs": 3}} \xff\xfe')
    with pytest.raises(ConfigError, match=rf"--config {path}: byte 25 is not UTF-8 text .* save the file as UTF-8"):
        load_config_file(path)


def test_config_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"train": {"epochs": 3}')
    with pytest.raises(ConfigError, match=rf"--config {path}: not valid JSON at line 1, column 24"):
        load_config_file(path)


def test_config_file_sections_must_be_objects() -> None:
    with pytest.raises(ConfigError, match=r"c.json: section 'train' is 3, but a section must be a JSON object"):
        merge_sections(QMUConfig(), {"train": 3}, "c.json")
    with pytest.raises(ConfigError, match=r"c.json: 'trian' is not a config section. Known: run, data"):
        merge_sections(QMUConfig(), {"trian": {"epochs": 3}}, "c.json")
    with pytest.raises(ConfigError, match=r"c.json: train.epoch is not a config field. Known in 'train': epochs"):
        merge_sections(QMUConfig(), {"train": {"epoch": 3}}, "c.json")
    cfg = merge_sections(preset("tiny"), {"train": {"epochs": 2}}, "c.json")
    assert cfg.train.epochs == 2 and cfg.train.batch_size == 16


# ----------------------------------------------------------------------------- artifact root


def test_empty_artifact_root_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"run.artifact_root='' is empty, .* Give a directory"):
        apply_overrides(QMUConfig(), ["run.artifact_root="])


def test_artifact_root_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"run.artifact_root='.*/f' is an existing file, not a directory"):
        check_artifact_root(tmp_path / "f")
    with pytest.raises(ConfigError, match=r"run.artifact_root='.*/f/sub' cannot be created: '.*/f' is a file"):
        check_artifact_root(tmp_path / "f" / "sub")


def test_artifact_root_that_is_not_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # chmod does not stop root, so deny access the way a read-only directory would
    monkeypatch.setattr(config_run.os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    with pytest.raises(ConfigError, match=r"run.artifact_root='.*/locked' is not writable: it denies write access"):
        check_artifact_root(locked)
    with pytest.raises(ConfigError, match=r"its nearest existing parent '.*/locked' denies write access"):
        check_artifact_root(locked / "new" / "deeper")


def test_new_or_writable_artifact_roots_pass(tmp_path: Path) -> None:
    assert check_artifact_root(tmp_path) == tmp_path
    assert check_artifact_root(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checking creates nothing


# ----------------------------------------------------------------------------- export


def test_export_destination_must_be_new_or_empty(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactError, match=r"Export destination .*/file is an existing file.*new or empty directory"):
        check_out_dir(tmp_path / "file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "manifest.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"Export destination .*/full is not empty \(1 entries: manifest.json\)"):
        check_out_dir(tmp_path / "full")
    (tmp_path / "empty").mkdir()
    assert check_out_dir(tmp_path / "empty") == tmp_path / "empty"
    assert check_out_dir(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", r"is not a readable JSON run summary"),
        ('{"models": {}}', r'has no "artifacts" entry, so it is not a QMU run summary'),
        ('{"artifacts": ["a"]}', r'"artifacts" is a JSON list, not an object \{name: path\}; the file is damaged'),
        ('{"artifacts": {"before": 3}}', r"\"artifacts\"\['before'\] is 3, not a file path"),
    ],
)
def test_malformed_summary_is_an_artifact_error(tmp_path: Path, text: str, expected: str) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(text)
    with pytest.raises(ArtifactError, match=expected) as err:
        resolve_model_ref(summary)
    assert str(summary) in str(err.value)


def _relative_run(project: Path) -> tuple[Path, Path]:
    """A run written with the relative artifact root `data/artifacts` from `project`."""
    model = project / "data" / "artifacts" / "model" / "model-v1-abc.parquet"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"")
    run_dir = project / "data" / "artifacts" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    stored = {"before": "data/artifacts/model/model-v1-abc.parquet", "oracle": "data/artifacts/model/gone.parquet"}
    (run_dir / "summary.json").write_text(json.dumps({"artifacts": stored}))
    return run_dir, model


def test_relative_artifact_paths_resolve_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, model = _relative_run(tmp_path / "project")
    monkeypatch.chdir(tmp_path / "project")  # where the run was made
    assert resolve_model_ref(run_dir).path.resolve() == model.resolve()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    ref = resolve_model_ref(Path("../project/data/artifacts/runs/r1"))
    assert ref.path.resolve() == model.resolve() and ref.key == "model-v1-abc"


def test_summary_naming_a_deleted_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir, _ = _relative_run(tmp_path / "project")
    monkeypatch.chdir(tmp_path)
    # the stored path is read under the root the summary lies in (a copied root never reaches back)
    gone = tmp_path / "project" / "data" / "artifacts" / "model" / "gone.parquet"
    with pytest.raises(
        ArtifactError,
        match=rf"lists the 'oracle' model as data/artifacts/model/gone.parquet, but {gone} does not exist",
    ):
        resolve_model_ref(run_dir, phase="oracle")


def test_a_config_file_may_name_its_preset() -> None:
    cfg = merge_sections(QMUConfig(), {"preset": "tiny", "train": {"epochs": 2}}, "c.json")
    assert cfg == preset("tiny", train={"epochs": 2}) and cfg.preset == "tiny"
    with pytest.raises(ConfigError, match=r'c.json: preset "huge" is not a preset. Known: tiny, default'):
        merge_sections(QMUConfig(), {"preset": "huge"}, "c.json")
