"""The `run` and `data` sections, the artifact root's check and seed derivation.

`check_artifact_root` is the one check that looks at the file system or a URL root (the CLI
runs it before a run).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictInt,
    field_validator,
    model_serializer,
    model_validator,
)

from qmu_core.config.form import Section, unsaid
from qmu_core.errors import ConfigError

__all__ = ["KNOWN_LABELS", "DataConfig", "RunConfig", "check_artifact_root", "derive_seed"]

# Labels of the built-in datasets, known without loading them (MNIST files are checked at split time).
KNOWN_LABELS = {"digits": range(10), "synthetic": range(10)}


class RunConfig(Section):
    """Where a run writes and which root seed it derives every other seed from."""

    seed: int = Field(0, strict=True, ge=0, description="Root seed; every model and stage derives its own.")
    workers: int = Field(
        0,
        strict=True,
        ge=0,
        le=64,
        description=(
            "Processes that train models side by side (TensorFlow does not scale in threads); 0: one per core. "
            "With `task_runner: dask` and no `dask_address`: the local Dask cluster's worker processes."
        ),
    )
    task_runner: Literal["local", "dask"] = Field(
        "local",
        description=(
            "Where stages run. `local`: threads of the flow's process, with model training in `workers` "
            "processes. `dask`: Dask workers (prefect-dask's DaskTaskRunner), each stage in one worker "
            "process; a local cluster of `workers` single-threaded processes, or the cluster at `dask_address`."
        ),
    )
    dask_address: str | None = Field(
        None,
        description=(
            "Scheduler of an existing Dask cluster, e.g. `tcp://10.0.0.5:8786` (only with `task_runner: dask`). "
            "Its workers need the same install and must reach `artifact_root` and the Prefect API "
            "(docs/running.md: Dask)."
        ),
    )
    artifact_root: str = Field(
        "data/artifacts",
        description=(
            "Where every artifact of the run goes (Parquet, JSON, plots): a local directory, or any fsspec URL "
            "that workers on other machines can reach, e.g. `s3://my-bucket/qmu` (needs s3fs), `gs://...` "
            "(gcsfs) or `file:///mnt/shared/qmu`. A URL root is read and written through a local mirror "
            "(`$QMU_ARTIFACT_CACHE`, default `~/.cache/qmu/roots`)."
        ),
        examples=["data/artifacts", "s3://my-bucket/qmu"],
    )

    @field_validator("artifact_root", mode="before")
    @classmethod
    def _root_is_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError(
                f"run.artifact_root={value!r} is empty, which would scatter artifacts over the current "
                "directory. Give a directory, for example `--set run.artifact_root=data/artifacts` "
                "(or `.` if you really mean the current directory)."
            )
        return str(value) if isinstance(value, Path) else value


class DataConfig(Section):
    """Which images are used and how records are split into roles."""

    dataset: Literal["digits", "mnist", "synthetic", "file"] = Field(
        "digits",
        description=(
            "`digits` ships inside scikit-learn (8x8 images, works offline); `mnist` reads IDX "
            "`*-ubyte.gz` files or `mnist.npz` from `mnist_path` (or downloads through Keras); "
            "`synthetic` draws Gaussian blobs for tests; `file` reads your own data from `path`."
        ),
    )
    path: str | None = Field(
        None,
        description=(
            "`dataset: file`: a .parquet or .csv table (a label column plus an image column or feature columns), "
            "an .npz with arrays x and y, an IDX images file with its labels file beside it (or a folder of such "
            "pairs), or a folder with one subfolder of images per class (docs/data.md)."
        ),
    )
    label_column: str = Field(
        "label", min_length=1, description="`dataset: file`, tables: the column holding each record's class."
    )
    mnist_path: str | None = Field(
        None,
        description=(
            "Directory holding MNIST (`t10k-images-idx3-ubyte.gz` + labels, optionally the "
            "`train-*` pair, or `mnist.npz`). Empty: `data/raw/mnist`, then Keras' cache/download."
        ),
    )
    classes: tuple[StrictInt, ...] = Field(
        tuple(range(10)), min_length=2, description="Labels kept; the model has one output each."
    )
    forget: Literal["class", "samples"] = Field(
        "class",
        description=(
            "The deletion request: `class`, every training record of `forget_class` (the paper's setting); "
            '`samples`, the training records listed in `forget_ids` ("delete these users").'
        ),
    )
    forget_class: int = Field(
        4, strict=True, description="Class requests: training records with this label form the forget set."
    )
    forget_ids: tuple[StrictInt, ...] = Field(
        (),
        description=(
            "Sample requests: the `sample_id`s to delete (dataset indices of target training records; a run's "
            "splits Parquet lists them with role `target_train`)."
        ),
    )
    members: str | None = Field(
        None,
        description=(
            "A model trained elsewhere (`qmu audit --weights`): a file listing the sample_ids it trained on (.txt one "
            "per line, .csv/.parquet column sample_id, .npy, .npz `ids`). They become the target's training set, "
            "exactly; n_target_train must be their number. Empty: QMU draws the training set."
        ),
    )
    n_target_train: int = Field(500, strict=True, ge=8, description="Target members: the target's training set.")
    n_target_holdout: int = Field(
        250, strict=True, ge=4, description="Target non-members: held out, the attack's negative control."
    )
    n_shadow_pool: int = Field(
        700, strict=True, ge=8, description="Disjoint pool the attacker draws shadow training sets from."
    )
    n_test: int = Field(300, strict=True, ge=4, description="Test records for retain/forget accuracy.")

    @model_validator(mode="after")
    def _forget_class_is_kept(self) -> DataConfig:
        if self.forget_class not in self.classes:
            raise ValueError(
                f"data.forget_class={self.forget_class} is not in data.classes="
                f"{list(self.classes)}; pick one of those labels or add it to `data.classes`."
            )
        if self.forget == "samples" and not self.forget_ids:
            raise ValueError(
                "data.forget='samples' is an empty deletion request: data.forget_ids lists no sample_id. List "
                "the target training records to delete, e.g. data.forget_ids=[12, 345], or use data.forget='class'."
            )
        if self.forget == "class" and self.forget_ids:
            raise ValueError(
                f"data.forget_ids lists {len(self.forget_ids)} sample_ids but data.forget='class' deletes class "
                f"{self.forget_class}: set data.forget='samples' to delete those records, or clear data.forget_ids."
            )
        repeated = sorted(i for i, n in Counter(self.forget_ids).items() if n > 1)
        if repeated:
            raise ValueError(f"data.forget_ids repeats sample_ids {repeated[:10]}; list each record once.")
        if any(i < 0 for i in self.forget_ids):
            raise ValueError("data.forget_ids has negative sample_ids; sample_ids are dataset indices 0, 1, 2, ...")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"data.classes={list(self.classes)} repeats a label; list each once.")
        negative = [c for c in self.classes if c < 0]
        if negative:
            raise ValueError(
                f"data.classes={list(self.classes)} has negative labels {negative}; dataset labels are "
                "0, 1, 2, ...: remove them."
            )
        if self.dataset == "file" and not self.path:
            raise ValueError(
                "data.dataset='file' reads your own data from data.path, but data.path is empty: set it to the file "
                "or folder (form: the data section's Path; CLI: --set data.path=/data/mine.csv)."
            )
        known = KNOWN_LABELS.get(self.dataset)
        unknown = [c for c in self.classes if known is not None and c not in known]
        if known is not None and unknown:
            raise ValueError(
                f"data.classes={list(self.classes)} has labels {unknown} that data.dataset="
                f"{self.dataset!r} does not have (its labels are {known.start}..{known.stop - 1}); "
                "remove them, or the model gets an output no record ever trains."
            )
        return self

    @field_validator("path", "members", mode="before")
    @classmethod
    def _blank_path_is_none(cls, value: Any) -> Any:
        """A blank path (a form's cleared text box) is no path."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_serializer(mode="wrap")
    def _file_fields_unsaid(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> dict[str, Any]:
        """Leave `path`, `label_column` and `members` out at their defaults.

        The split then keeps the key it had before they existed.
        """
        defaults = (("path", None), ("label_column", "label"), ("members", None))
        at_default = [k for k, v in defaults if getattr(self, k) == v]
        return unsaid(handler(self), info, at_default)

    @property
    def n_records(self) -> int:
        """Records drawn in total across the four roles."""
        return self.n_target_train + self.n_target_holdout + self.n_shadow_pool + self.n_test


def check_artifact_root(root: Path | str) -> Path | str:
    """Check that `root` is, or can be created as, a directory this process can write.

    For a URL root (``scheme://...``), check that fsspec knows the protocol, its package is
    installed and a probe file can be written and deleted there.

    The CLI calls it before a run starts, so a bad `run.artifact_root` fails before any work.

    Returns:
        `root` as a `Path`, or the URL (a string) for a URL root.

    Raises:
        ConfigError: If `root` is an existing file, lies below a file, or is not writable; for
            a URL, if its protocol is unknown, its fsspec backend is not installed, or the probe fails.
    """
    from qmu_core import storage

    if storage.is_url(root):
        return _check_url_root(str(storage.normalize(root)))
    root = Path(root)
    fix = (
        "Set `run.artifact_root` to a directory you can write (it is created if missing), "
        "e.g. `--set run.artifact_root=/tmp/qmu`."
    )
    if root.exists() and not root.is_dir():
        raise ConfigError(f"run.artifact_root={str(root)!r} is an existing file, not a directory. {fix}")
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(
            f"run.artifact_root={str(root)!r} cannot be created: {str(probe)!r} is a file, not a directory. {fix}"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "it" if probe == root else f"its nearest existing parent {str(probe)!r}"
        raise ConfigError(
            f"run.artifact_root={str(root)!r} is not writable: {where} denies write access to this user. "
            f"{fix} Or fix the permissions."
        )
    return root


def _check_url_root(url: str) -> str:
    """`check_artifact_root` for a URL root: known protocol, backend installed, a probe file written and deleted."""
    import uuid

    import fsspec  # type: ignore[import-untyped]
    from fsspec.registry import known_implementations  # type: ignore[import-untyped]

    protocol = url.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise ConfigError(
            f"run.artifact_root={url!r}: fsspec knows no protocol {protocol!r}. Use a local directory or a URL "
            f"of a protocol it knows, e.g. s3://, gs://, az:// or file:// ({len(known_implementations)} are known)."
        ) from None
    except ImportError as exc:
        err = known_implementations.get(protocol, {}).get("err") or str(exc)
        package = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}.get(
            protocol
        )
        hint = f"`pip install {package}`" if package else "install the package fsspec names"
        raise ConfigError(
            f"run.artifact_root={url!r} needs the fsspec backend for {protocol!r}, which is not installed "
            f"({err}). {hint} in this environment and on every worker machine."
        ) from None
    rel = f".qmu-probe-{uuid.uuid4().hex[:12]}"
    try:
        fs, base = fsspec.core.url_to_fs(url)
        target = f"{str(base).rstrip('/')}/{rel}"
        fs.makedirs(str(base), exist_ok=True)
        fs.pipe_file(target, b"qmu write probe\n")
        fs.rm_file(target)
    except Exception as exc:  # noqa: BLE001 - any backend error (permissions, credentials, network): not usable
        raise ConfigError(
            f"run.artifact_root={url!r} is not writable: writing and deleting the probe file {url}/{rel} failed "
            f"({type(exc).__name__}: {exc}). Check the URL, that the location exists, and the backend's "
            "credentials (e.g. AWS_PROFILE / AWS_ACCESS_KEY_ID for s3://, GOOGLE_APPLICATION_CREDENTIALS for gs://)."
        ) from None
    return url


def derive_seed(root: int, *labels: str | int) -> int:
    """Stable 31-bit child seed for one model or stage, independent of call order."""
    text = "/".join([str(root), *map(str, labels)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF
