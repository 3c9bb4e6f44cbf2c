"""The real `tiny` pipeline on an ``s3://`` artifact root: moto's S3 server on loopback, through s3fs.

Each "machine" is a Dask cluster of two worker processes plus this process (which runs the flow
and the stages it calls in place); every one of them has its own, initially empty mirror
(`storage.CACHE_ENV`), so the bucket is all they share. The S3 settings reach every process as
the standard AWS variables: ``AWS_ENDPOINT_URL_S3`` is read when a client is made, also in a
process that imported fsspec before the test set it (``FSSPEC_S3_ENDPOINT_URL`` is read only when
fsspec is imported, which this process did long ago).

1. Machine A runs the pipeline: every stage computed, every file on the bucket, both workers worked.
2. Machine B (fresh mirrors) reruns it: every stage reused from the bucket.
3. The target model's object is overwritten with other bytes of the same size (B's mirrors hold the
   intact copy); B's next run notices, rebuilds that
   one stage (its downstream stages are reused: their keys and seals still hold) and the object on
   the bucket matches its seal again.
4. A process of QMU's training pool (`qmu_core.workers`, the default runner's) reads it from the bucket.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
from distributed import Client, Nanny, Scheduler, SpecCluster
from moto.server import ThreadedMotoServer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId, LogFilterLevel
from prefect.settings import PREFECT_API_URL

from flows.pipeline import qmu_pipeline
from qmu_core import artifacts, environment, storage, workers
from qmu_core.artifacts import SEAL_SUFFIX, ArtifactRef
from qmu_core.config import check_artifact_root, preset
from qmu_core.errors import ArtifactError, ConfigError
from tests.support import task_states

pytestmark = pytest.mark.usefixtures("prefect_api")

BUCKET = "qmu-test-root"
PREFIX = "qmu"
URL = f"s3://{BUCKET}/{PREFIX}"
STAGES = 10 + 3 * 1 + 2 * 1  # one unlearning method, one reference model (test_url_root.py)


def _point_s3_at(endpoint: str, monkeypatch: pytest.MonkeyPatch, **extra: str) -> dict[str, str]:
    """Send this process's S3 clients (and its children's) to `endpoint`; the variables that do it."""
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        **extra,
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(autouse=True)
def _fresh_s3_clients() -> Iterator[None]:
    """No S3 client of another test: fsspec keeps one `S3FileSystem` per process, its endpoint fixed at first use."""
    from s3fs import S3FileSystem

    def forget() -> None:
        S3FileSystem.clear_instance_cache()
        storage._remote.cache_clear()  # a `Remote` holds its file system

    forget()
    yield
    forget()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """An S3 API (moto's server) on a free loopback port, with an empty bucket; the environment that reaches it."""
    quiet = logging.getLogger("werkzeug")  # one line per request otherwise
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = _point_s3_at(f"http://{host}:{port}", monkeypatch)
        _bucket().create_bucket(Bucket=BUCKET)
        yield env
    finally:
        server.stop()
        quiet.setLevel(level)


def _bucket() -> Any:
    """A boto3 client of the test's S3 server: the bucket seen without s3fs or QMU."""
    return boto3.client("s3")


def _object(rel: str) -> bytes:
    return bytes(_bucket().get_object(Bucket=BUCKET, Key=f"{PREFIX}/{rel}")["Body"].read())


def _keys() -> list[str]:
    pages = _bucket().get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return [o["Key"].removeprefix(f"{PREFIX}/") for page in pages for o in page.get("Contents", [])]


@contextlib.contextmanager
def _machine(mirrors: Path, s3_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A machine: this process and a two-worker Dask cluster, each with its own mirror below `mirrors`.

    Yields the scheduler's address (`run.dask_address`).
    """
    monkeypatch.setenv(storage.CACHE_ENV, str(mirrors / "flow"))
    # Dask workers inherit the environment, not Prefect's settings context (test_pipeline.py)
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    env = {**environment.ENV, **s3_env, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
    scheduler = {
        "cls": Scheduler,
        "options": {"host": "127.0.0.1", "port": 0, "dashboard": False, "dashboard_address": "127.0.0.1:0"},
    }
    specs = {
        name: {
            "cls": Nanny,
            "options": {"nthreads": 1, "host": "127.0.0.1", "env": {**env, storage.CACHE_ENV: str(mirrors / name)}},
        }
        for name in ("worker-0", "worker-1")
    }
    with SpecCluster(workers=specs, scheduler=scheduler, name=mirrors.name) as cluster, Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        # what the workers see: their own mirror, the same endpoint
        seen = client.run(lambda: (str(storage.mirror_dir(URL)), os.environ.get("AWS_ENDPOINT_URL_S3")))
        assert len({m for m, _ in seen.values()}) == 2, seen
        assert {e for _, e in seen.values()} == {s3_env["AWS_ENDPOINT_URL_S3"]}, seen
        yield str(cluster.scheduler_address)


def _run(address: str) -> tuple[str, dict[str, str], Any]:
    """One `tiny` pipeline run on the cluster at `address`: summary URL, task-run states, flow run id."""
    run = {"artifact_root": URL, "task_runner": "dask", "dask_address": address}
    cfg = preset("tiny", run=run, unlearn={"methods": ["ga"]}, attack={"n_shadow": 1})
    try:
        state = qmu_pipeline(cfg, return_state=True)
    finally:
        workers.shutdown()
    assert state.is_completed(), state.message
    flow_run_id = state.state_details.flow_run_id
    return state.result(), task_states(flow_run_id, STAGES + 1), flow_run_id


def _stages(states: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in states.items() if not k.startswith("publish report")}


def _warnings(flow_run_id: Any, needle: str, timeout: float = 60.0) -> list[str]:
    """The flow run's WARNING (and worse) lines, Dask workers' too, that contain `needle`; polled: workers send late."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            warnings = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]), level=LogFilterLevel(ge_=30))
            logs = client.read_logs(warnings, limit=200)
            found = [log.message for log in logs if needle in log.message]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(1.0)


def _seals() -> dict[str, dict[str, str]]:
    """Every integrity record on the bucket: the files it lists (``<stage>/<file>``) and their SHA-256."""
    return {k: json.loads(_object(k))["files"] for k in _keys() if k.endswith(SEAL_SUFFIX)}


def _variables(parquet: bytes) -> dict[str, np.ndarray]:
    """A model artifact's weights by (model, variable), from its Parquet bytes."""
    frame = pq.read_table(io.BytesIO(parquet)).to_pandas()
    rows = zip(frame["model_id"], frame["variable"], frame["values"], strict=True)
    return {f"{m}/{v}": np.asarray(x, np.float32) for m, v, x in rows}


def test_an_s3_root_is_shared_by_dask_workers_reused_elsewhere_and_repaired(
    s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1. machine A: every stage computed by its workers, which share nothing but the bucket
    with _machine(tmp_path / "machine-a", s3, monkeypatch) as address:
        summary_url, states, _ = _run(address)
    assert len(_stages(states)) == STAGES and set(states.values()) == {"Completed"}, states
    assert summary_url.startswith(f"{URL}/runs/") and summary_url.endswith("/summary.json")
    summary = json.loads(_object(summary_url.removeprefix(f"{URL}/")))
    listed = [p for v in summary["artifacts"].values() for p in (v.values() if isinstance(v, dict) else [v])]
    on_bucket = set(_keys())
    for rel in [*listed, summary["report_md"], summary["plot_png"], summary["roc_png"], summary["deletion_md"]]:
        assert rel in on_bucket, rel
    seals = _seals()
    sealed = {rel: digest for files in seals.values() for rel, digest in files.items()}
    assert len(seals) >= STAGES and set(listed) <= set(sealed), (sorted(seals), listed)
    for rel, digest in sealed.items():  # every file on the bucket is the one its seal describes
        assert hashlib.sha256(_object(rel)).hexdigest() == digest, rel
    assert not [k for k in on_bucket if k.endswith((".lock", storage.TMP_SUFFIX))], on_bucket
    for name in ("flow", "worker-0", "worker-1"):  # every process worked, each in its own mirror
        assert any((tmp_path / "machine-a" / name).rglob("*.parquet")), name

    # 2. machine B, empty mirrors: every stage reused from the bucket
    with _machine(tmp_path / "machine-b", s3, monkeypatch) as address:
        second_url, again, _ = _run(address)
        stages = _stages(again)
        assert len(stages) == STAGES and set(stages.values()) == {"Cached"}, again
        assert second_url != summary_url and second_url.removeprefix(f"{URL}/") in _keys()
        assert any((tmp_path / "machine-b" / "flow").rglob("metrics-v*.parquet"))  # publishing read it from S3

        # 3. the target model's object overwritten on the bucket with other bytes of the same size, while
        # B's mirrors hold the intact copy: B's next run notices (the object's ETag changed) and rebuilds it
        model = summary["artifacts"]["before"]
        original = _object(model)
        assert any((tmp_path / "machine-b").rglob(model.rsplit("/", 1)[-1]))  # B holds a copy
        garbage = bytes(b ^ 0x5A for b in original)
        _bucket().put_object(Bucket=BUCKET, Key=f"{PREFIX}/{model}", Body=garbage)
        third_url, repaired, flow_run_id = _run(address)
    stages = _stages(repaired)
    assert len(stages) == STAGES, repaired
    # only its stage ran again; downstream stages keep their keys and seals, so they are reused
    assert {k: v for k, v in stages.items() if v != "Cached"} == {"train target": "Completed"}, repaired
    key = model.rsplit("/", 1)[-1].removesuffix(".parquet")
    noticed = _warnings(flow_run_id, "cannot be reused")
    assert [m for m in noticed if key in m and "does not match the checksum" in m], noticed
    # the object is whole again: it matches its new seal, and is the same model, so what was
    # computed from the original (and reused) still follows from it
    fixed = _object(model)
    assert fixed != garbage
    assert hashlib.sha256(fixed).hexdigest() == _seals()[f"{model.removesuffix('.parquet')}{SEAL_SUFFIX}"][model]
    weights, rebuilt = _variables(original), _variables(fixed)
    assert rebuilt.keys() == weights.keys()
    for name, values in weights.items():
        np.testing.assert_allclose(rebuilt[name], values, rtol=0, atol=float(np.finfo(np.float32).eps) * 1e3)
    third = json.loads(_object(third_url.removeprefix(f"{URL}/")))
    assert third_url not in (summary_url, second_url) and third["models"] == summary["models"]

    # QMU's own worker processes (model training under the default runner) reach the bucket too
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "machine-c"))
    workers.shutdown()  # a worker takes the environment when it starts
    workers.configure(1)
    try:
        frame = workers.run(artifacts.read, ArtifactRef(stage="model", key=key, root=URL))
    finally:
        workers.configure(0)
        workers.shutdown()
    assert (storage.mirror_dir(URL) / model).read_bytes() == fixed  # downloaded there by that worker
    assert set(frame["model_id"] + "/" + frame["variable"]) == rebuilt.keys()


def test_an_unreachable_s3_endpoint_fails_naming_the_file_and_what_to_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """s3fs passes botocore's errors on where no HTTP answer came (no endpoint, no credentials): not `OSError`s.

    Downloads and uploads still fail with QMU's message, which names the file and what to check.
    """
    with socket.socket() as sock:  # a free loopback port, closed again: nothing answers there
        sock.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{sock.getsockname()[1]}"
    _point_s3_at(endpoint, monkeypatch, AWS_MAX_ATTEMPTS="1")  # no retries: fail at once
    monkeypatch.setenv(storage.CACHE_ENV, str(tmp_path / "mirrors"))
    remote = storage.remote(URL)
    assert remote is not None
    with pytest.raises(ArtifactError) as missing:
        remote.download("model/model-v1-000000000000.parquet")
    message = str(missing.value)
    assert f"Cannot download {URL}/model/model-v1-000000000000.parquet" in message, message
    assert "EndpointConnectionError" in message and "reachable" in message, message
    written = remote.local("model/model-v1-111111111111.parquet")
    written.parent.mkdir(parents=True, exist_ok=True)
    written.write_bytes(b"a model")
    with pytest.raises(ArtifactError, match=f"Cannot upload {written} to {URL}/model/.*writable") as upload:
        remote.upload("model/model-v1-111111111111.parquet")
    assert endpoint in str(upload.value)
    assert sorted(p.name for p in remote.mirror.rglob("*")) == ["model", written.name]  # no partial download left


def test_without_s3fs_an_s3_root_is_refused_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    """What tests/qmu_core/test_storage.py checks only where s3fs is missing (the dev install has it): hidden here."""
    import fsspec  # noqa: F401 - its registry module, below

    monkeypatch.setitem(sys.modules, "s3fs", None)  # `import s3fs` raises ImportError
    monkeypatch.delitem(sys.modules["fsspec.registry"]._registry, "s3", raising=False)  # not imported yet, then
    with pytest.raises(ConfigError, match=r"needs the fsspec backend for 's3'.*`pip install s3fs`"):
        check_artifact_root(f"s3://{BUCKET}/qmu")
