"""A finished study run, remembered: reuse it whole when nothing it depends on changed.

`qmu reproduce` runs seven ordinary QMU runs (`qmu_core.reproduction.studies`). Run again, each
reuses every stage, but a warm run still pays Prefect's cost per stage (a task run, its states,
its upstream look-ups over HTTP: measured 89 s for the study's 1,156 stages on 2 cores). A study
whose inputs did not change need not run at all. After a study run finishes, its record is
written to ``<root>/studies/<study key>.json``:

* ``study``: the study's name (``paper/shadow``);
* ``result``: its report's JSON (``runs/<folder>/summary.json``), relative to the root, and the
  SHA-256 of that file;
* ``artifacts``: every artifact its stages wrote or reused, with the code digest of the stage
  that wrote it.

The study key (`study_key`) hashes the study's name, its whole config, the data's content
fingerprint (`qmu_core.datasets.fingerprint`) and a digest of QMU's own source (`source_digest`:
every ``.py`` file of ``qmu_core``, ``tasks``, ``flows`` and ``qmu_prefect``), so a changed
setting, data file or line of code gives another key and the study runs (its unchanged stages
are still reused one by one). A record is used only if every artifact it lists passes the
stage cache's own check (`qmu_core.artifacts.verify`: present, the stage version, the code
digest and the SHA-256 of every file it sealed) and the report JSON is unchanged; otherwise
the reason is given and the study runs. Not recorded: studies whose stages run in other
processes (``run.task_runner='dask'``; the records are collected in this process).
Installed package versions are not in the key, as they are not in the stage keys either.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from qmu_core import artifacts, storage
from qmu_core.artifacts import ArtifactRef
from qmu_core.config import QMUConfig
from qmu_core.datasets import fingerprint

__all__ = ["RECORDS", "Reuse", "find", "recordable", "source_digest", "study_key", "write"]

RECORDS = "studies"
"""Folder of the study records under the artifact root."""

_PACKAGES = ("qmu_core", "tasks", "flows", "qmu_prefect")


@cache
def source_digest() -> str:
    """SHA-256 over the path and bytes of every ``.py`` file of QMU's library, tasks, flows and Prefect glue."""
    top = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in _PACKAGES:
        for path in sorted((top / package).rglob("*.py")):
            digest.update(f"{path.relative_to(top).as_posix()}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def study_key(name: str, config: QMUConfig) -> str:
    """The key of one study run: its name, config, data fingerprint and QMU's source (module doc)."""
    blob = json.dumps(
        {
            "study": name,
            "config": config.model_dump(mode="json"),
            "data": fingerprint(config.data),
            "source": source_digest(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def recordable(config: QMUConfig) -> bool:
    """Whether a study run with `config` can be recorded (its stages run in this process)."""
    return config.run.task_runner != "dask"


def _record_path(root: str, key: str) -> Path:
    return storage.local_dir(root) / RECORDS / f"{key}.json"


def write(root: str, name: str, key: str, result: str, refs: Iterable[tuple[ArtifactRef, str]]) -> Path:
    """Record a finished study run: its report JSON `result` and the `refs` (with their stage code) it used."""
    base = storage.local_dir(root)
    result_path = Path(result)
    listed = sorted({(r.stage, r.key, code) for r, code in refs})
    record: dict[str, Any] = {
        "study": name,
        "key": key,
        "result": result_path.resolve().relative_to(base.resolve()).as_posix(),
        "result_sha256": storage.sha256_file(result_path),
        "artifacts": [{"stage": s, "key": k, "code": c} for s, k, c in listed],
    }
    path = _record_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with storage.atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    return path


@dataclass(frozen=True)
class Reuse:
    """What `find` found: the report JSON to reuse, or why the study must run."""

    result: str | None
    why: str
    artifacts: int = 0


def find(root: str, key: str) -> Reuse:
    """The recorded run of study `key` if everything it used is intact, else why not (module doc)."""
    path = _record_path(root, key)
    if not path.is_file():
        return Reuse(None, "no earlier run of this study with this config, data and code")
    try:
        record = json.loads(path.read_text())
        result = storage.local_dir(root) / str(record["result"])
        listed = [(str(a["stage"]), str(a["key"]), str(a["code"])) for a in record["artifacts"]]
        digest = str(record["result_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Reuse(None, f"its record {path} is unreadable ({type(exc).__name__})")
    if not listed:
        return Reuse(None, f"its record {path} lists no artifacts")
    if not result.is_file() or storage.sha256_file(result) != digest:
        return Reuse(None, f"its report {result} is missing or changed")
    for stage, artifact_key, code in listed:
        if stage not in artifacts.STAGE_VERSIONS:
            return Reuse(None, f"its record lists an unknown stage {stage!r}")
        why = artifacts.verify(ArtifactRef(stage=stage, key=artifact_key, root=root), code=code)
        if why is not None:
            return Reuse(None, f"{artifact_key} cannot be reused ({why})")
    return Reuse(str(result), f"reused: {len(listed)} artifacts verified", len(listed))
