"""URL artifact roots (`qmu_core.storage`): a `file://` root seen by two machines (two mirrors)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from prefect.states import State

from qmu_core import artifacts, housekeeping, storage
from qmu_core.artifacts import ArtifactRef, Output
from qmu_core.config import TrainConfig, check_artifact_root, preset
from qmu_core.errors import ArtifactError, ConfigError
from tasks import split_data


def _metrics_output(value: float) -> Output:
    frame = pd.DataFrame({"model_id": ["m"], "phase": ["before"], "attack": [""], "metric": ["acc"], "value": [value]})
    roc = pd.DataFrame({"phase": ["before"], "attack": ["loss"], "fpr": [0.1], "tpr": [0.4]})
    return Output(frame, companions={"roc": roc})


@pytest.fixture
def shared(tmp_path: Path) -> tuple[str, Path]:
    """A URL root (``file://``) and the directory it names: the storage every machine sees."""
    directory = tmp_path / "shared"
    return f"file://{directory}", directory


def _machine(monkeypatch: pytest.MonkeyPatch, mirror: Path) -> None:
    """Make this process behave like another machine: its own, initially empty, mirror."""
    monkeypatch.setenv(storage.CACHE_ENV, str(mirror))


def test_keys_are_the_same_for_a_path_and_a_url_root(tmp_path: Path, shared: tuple[str, Path]) -> None:
    url, _ = shared
    inputs = {"train": TrainConfig(), "seed": 0}
    local = artifacts.plan("metrics", inputs, root=tmp_path)
    remote = artifacts.plan("metrics", inputs, root=url + "/")
    assert local.key == remote.key
    assert local.root == tmp_path and local.path == tmp_path / "metrics" / f"{local.key}.parquet"
    assert remote.root == url and remote.location == f"{url}/metrics/{remote.key}.parquet"  # `//` kept
    assert remote.path == storage.mirror_dir(url) / "metrics" / f"{remote.key}.parquet"
    # a ref survives JSON (Prefect, worker processes) with its URL intact
    assert ArtifactRef.model_validate_json(remote.model_dump_json()) == remote
    params = {
        "data": preset("tiny").data,
        "features": preset("tiny").model.feature_spec,
        "seed": 0,
        "source": "digits:test",
    }
    assert split_data.plan(**params, root=url).key == split_data.plan(**params, root=tmp_path).key


def test_a_second_machine_downloads_verifies_and_reads_what_the_first_wrote(
    tmp_path: Path, shared: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, directory = shared
    _machine(monkeypatch, tmp_path / "mirror-a")
    ref = artifacts.plan("metrics", {"seed": 1}, root=url)
    artifacts.write_output(_metrics_output(0.5), ref, {"seed": 1}, code="c1")
    roc = artifacts.companion(ref, "roc")
    # on the shared storage: the artifact, its companion and its seal, no temporary files
    on_root = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())
    assert on_root == sorted([ref.rel, roc.rel, f"metrics/{ref.key}.seal.json"])
    assert ref.path.is_relative_to(tmp_path / "mirror-a")

    _machine(monkeypatch, tmp_path / "mirror-b")
    assert not ref.path.exists()  # machine B has nothing yet
    assert artifacts.verify(ref, code="c1") is None
    assert artifacts.verify(ref, code="c2") == "the code of its stage changed since it was written"
    assert ref.path.is_relative_to(tmp_path / "mirror-b") and ref.path.is_file()
    assert artifacts.read(ref)["value"].tolist() == [0.5]
    assert artifacts.read(roc)["tpr"].tolist() == [0.4]
    assert artifacts.read_metadata(ref).inputs == {"seed": 1}

    _machine(monkeypatch, tmp_path / "mirror-c")  # a reader that never verifies downloads on first read
    assert artifacts.read(roc)["fpr"].tolist() == [0.1] and artifacts.exists(ref)
    missing = artifacts.plan("metrics", {"seed": 2}, root=url)
    assert not artifacts.exists(missing)
    with pytest.raises(ArtifactError, match=f"{missing.location} does not exist"):
        artifacts.read(missing)


def test_a_tampered_remote_file_is_rejected_and_the_stage_rebuilds_it(
    tmp_path: Path, shared: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, directory = shared
    _machine(monkeypatch, tmp_path / "mirror-a")
    params = {
        "data": preset("tiny").data,
        "features": preset("tiny").model.feature_spec,
        "seed": 0,
        "source": "digits:test",
        "root": url,
    }
    ref = split_data.task.fn(**params)
    assert isinstance(split_data.task.fn(**params), State)  # Cached, from the URL root
    remote_file = directory / ref.rel
    good = remote_file.read_bytes()
    remote_file.write_bytes(good[: len(good) // 2])  # truncated on the shared storage
    # machine A still holds the good copy, but the root does not: not reusable
    assert "does not match the checksum" in str(artifacts.verify(ref, code=split_data.code))
    _machine(monkeypatch, tmp_path / "mirror-b")  # a fresh machine sees the same
    assert "does not match the checksum" in str(artifacts.verify(ref, code=split_data.code))
    rebuilt = split_data.task.fn(**params)
    assert rebuilt == ref and not isinstance(rebuilt, State)  # computed again, not handed on
    assert artifacts.verify(ref, code=split_data.code) is None and len(remote_file.read_bytes()) == len(good)
    # a companion changed on the root also forces a rebuild
    fmap = directory / artifacts.companion(ref, "feature_map").rel
    fmap.write_bytes(fmap.read_bytes() + b"x")
    _machine(monkeypatch, tmp_path / "mirror-c")
    assert not isinstance(split_data.task.fn(**params), State)
    assert isinstance(split_data.task.fn(**params), State)


def test_a_seal_without_its_files_is_not_reusable(
    tmp_path: Path, shared: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, directory = shared
    _machine(monkeypatch, tmp_path / "mirror-a")
    ref = artifacts.plan("metrics", {"seed": 3}, root=url)
    artifacts.write_output(_metrics_output(0.25), ref, {"seed": 3})
    (directory / ref.rel).unlink()  # e.g. a writer died after a seal was copied by hand
    assert artifacts.verify(ref) == f"{ref.location} is missing"  # even though mirror A still has it
    _machine(monkeypatch, tmp_path / "mirror-b")
    assert artifacts.verify(ref) == f"{ref.location} is missing"
    # and files without their seal are not reusable either; the stale mirror seal goes too
    artifacts.write_output(_metrics_output(0.25), ref, {"seed": 3})
    (directory / f"metrics/{ref.key}.seal.json").unlink()
    assert "integrity record" in str(artifacts.verify(ref)) and not artifacts.seal_path(ref).exists()


def test_the_seal_is_uploaded_after_the_files(
    tmp_path: Path, shared: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, directory = shared
    _machine(monkeypatch, tmp_path / "mirror")
    order: list[str] = []
    upload = storage.Remote.upload

    def recording(self: storage.Remote, rel: str) -> None:
        seal = directory / rel.replace(".parquet", ".seal.json")
        order.append(f"{rel} (seal on root: {seal.exists()})")
        upload(self, rel)

    monkeypatch.setattr(storage.Remote, "upload", recording)
    ref = artifacts.plan("metrics", {"seed": 4}, root=url)
    artifacts.write_output(_metrics_output(1.0), ref, {"seed": 4})
    roc = artifacts.companion(ref, "roc")
    assert order == [
        f"{roc.rel} (seal on root: False)",
        f"{ref.rel} (seal on root: False)",
        f"metrics/{ref.key}.seal.json (seal on root: False)",
    ]
    # rewriting (a rebuild) takes the old seal off the root before replacing the files
    order.clear()
    artifacts.write_output(_metrics_output(1.0), ref, {"seed": 4})
    assert order[1] == f"{ref.rel} (seal on root: False)"


def test_check_artifact_root_for_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run.artifact_root='nosuchproto://b/x': fsspec knows no protocol"):
        check_artifact_root("nosuchproto://b/x")
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"is not writable: writing and deleting the probe file .* failed"):
        check_artifact_root(f"file://{tmp_path}/f/sub")  # below a file: cannot be created, even by root
    with pytest.raises(ConfigError, match=r"is not writable"):
        check_artifact_root("file:///proc/qmu-artifacts")  # a file system nobody can create files in
    assert check_artifact_root(f"file://{tmp_path}/new/") == f"file://{tmp_path}/new"
    assert (tmp_path / "new").is_dir() and not any((tmp_path / "new").iterdir())  # the probe is gone


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed")
def test_check_artifact_root_names_the_missing_backend() -> None:
    with pytest.raises(ConfigError, match=r"needs the fsspec backend for 's3'.*`pip install s3fs`"):
        check_artifact_root("s3://some-bucket/qmu")


def test_housekeeping_works_on_the_mirror_of_a_url_root(
    tmp_path: Path, shared: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, directory = shared
    _machine(monkeypatch, tmp_path / "mirror")
    kept = artifacts.write_output(_metrics_output(1.0), artifacts.plan("metrics", {"s": 1}, root=url), {"s": 1})
    orphan = artifacts.write_output(_metrics_output(2.0), artifacts.plan("metrics", {"s": 2}, root=url), {"s": 2})
    run = storage.local_dir(url) / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"artifacts": {"metrics": kept.location}}))  # URLs, as published
    assert "its local mirror" in housekeeping.listing(url)
    removed = housekeeping.collect_garbage(url)
    assert orphan.path in removed and kept.path.is_file() and not orphan.path.exists()
    assert (directory / orphan.rel).is_file()  # the shared root is never pruned from one machine


def test_a_run_folder_stays_in_runs_and_never_replaces_an_earlier_run(tmp_path: Path) -> None:
    """A flow-run name is user input (the UI's Run name, `--flow-run-name`).

    Its folder is derived from it, one level below ``runs/``, and a second run of one name gets a new folder.
    """
    from qmu_core.storage import run_folder

    assert run_folder(tmp_path, "default-class4-3f2a9c-brave-otter") == "runs/default-class4-3f2a9c-brave-otter"
    for name, folder in [("../../../x", "x"), ("/etc/passwd", "etc-passwd"), ("..", "run"), ("a b/c", "a-b-c")]:
        assert run_folder(tmp_path, name) == f"runs/{folder}", name
    (tmp_path / "runs" / "x").mkdir(parents=True)
    assert run_folder(tmp_path, "../../../x") == "runs/x-2"
    (tmp_path / "runs" / "x-2").mkdir()
    assert run_folder(tmp_path, "x") == "runs/x-3"
    assert len(run_folder(tmp_path, "y" * 500)) == len("runs/") + 120
