"""What a flow run shows in the Prefect UI: its report, tables, plots, files and progress.

Artifacts created inside a task hang on that task run, and the UI's flow-run Artifacts tab
lists them under "Task runs" (the "Flow run" section stays "None"). These helpers run in the
flow body and create every artifact through the client with the flow run's id and no task run
id, so they are the flow run's own:

* `show_run(path)`: after a publish task, from the JSON it wrote (a run's ``summary.json``, or a
  hardware / shot-count report's ``hardware.json`` / ``shots.json``): the comparison table with
  rounded numbers, the Markdown report with its plots embedded as ``data:image/png;base64``
  images (the UI renders those; it cannot reach the files behind a ``file://`` link), and a
  "Files" table of every file of the run. Returns `path`, so a flow ends with
  ``return show_run(publish_report(...))``.
* `track(futures, label)`: a flow-level progress bar, "reference models trained k/n", advanced
  as each future finishes (done callbacks update it through the client).

Outside a flow run (``flow.fn``), or when the API does not answer, they do nothing but log:
what a run computed never depends on what the UI shows. Every call goes through
`qmu_prefect.log.best_effort` (a short timeout, no retries, and none at all for a while once the API
could not be reached).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import ArtifactCreate, ArtifactUpdate
from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_KEY, PREFECT_API_URL

from qmu_core import report, storage
from qmu_core.artifacts import ArtifactRef
from qmu_prefect.log import best_effort

__all__ = ["files_markdown", "markdown_with_images", "show_run", "track"]

logger = logging.getLogger("qmu.ui")

PUBLISH_TIMEOUT_S = 30.0
"""Seconds one request of `show_run` may take (a report with its plots is a few hundred kB)."""


def _flow_run_id() -> UUID | None:
    context = FlowRunContext.get()
    return context.flow_run.id if context is not None and context.flow_run is not None else None


def _read(path: str | Path) -> bytes | None:
    """The file's bytes (a local path or an fsspec URL), None when it cannot be read."""
    try:
        text = str(path)
        if storage.is_url(text):
            import fsspec

            with fsspec.open(text, "rb") as f:
                return bytes(f.read())
        return Path(text).read_bytes()
    except Exception:  # noqa: BLE001 - a missing plot leaves the report without that image
        return None


def _name(path: str | Path) -> str:
    return PurePosixPath(str(path)).name


def _create(client: SyncPrefectClient, flow_run_id: UUID, kind: str, key: str, data: Any, description: str) -> UUID:
    artifact = ArtifactCreate(
        type=kind, key=key, description=description, data=data, flow_run_id=flow_run_id, task_run_id=None
    )
    return client.create_artifact(artifact=artifact).id


def markdown_with_images(markdown: str, images: Mapping[str, str | Path], *, before: str | None = None) -> str:
    """`markdown` with each PNG of `images` ({caption: path}) as a ``data:`` URI image.

    A relative link to the file's name (``![...](deletion.png)``, how the report links it on
    disk) is replaced in place, where the UI could not follow it; the others go to a "Plots"
    section placed before the first line starting with `before` (else at the end).
    """
    lines = []
    for caption, path in images.items():
        data = _read(path)
        if not data:
            continue
        uri = "data:image/png;base64," + base64.b64encode(data).decode()
        link = f"]({_name(path)})"
        if link in markdown:
            markdown = markdown.replace(link, f"]({uri})")
            continue
        lines.append(f"**{caption}** (`{_name(path)}`)\n\n![{caption}]({uri})\n")
    if not lines:
        return markdown
    section = "## Plots\n\n" + "\n".join(lines) + "\n"
    if before and f"\n{before}" in markdown:
        head, tail = markdown.split(f"\n{before}", 1)
        return f"{head}\n{section}\n{before}{tail}"
    return markdown.rstrip("\n") + "\n\n" + section


def _file_url(path: str) -> str:
    """A link target for a run file: its URL under a URL root, else a ``file://`` URL."""
    if storage.is_url(path):
        return path
    return Path(path).resolve().as_uri()


def files_markdown(
    title: str, files: Mapping[str, str | Mapping[str, str]], shown: Mapping[str, str] | None = None
) -> str:
    """A Markdown table of the run's files: what, a link to the file, a link to its UI page.

    The file's link is ``file://`` or its URL; the UI page is there for files the UI shows as
    artifacts (`shown`: {what: UI path}).
    """
    shown = shown or {}
    lines = [
        f"# Files: {title}",
        "",
        "The run folder's `index.html` shows the reports with their plots in a browser. Browsers do not",
        "follow `file://` links from a web page: copy one into the address bar, or use the UI link.",
        "",
        "| what | file | in the UI |",
        "|---|---|---|",
    ]
    for what, value in files.items():
        if value is None:
            continue
        parts = value.items() if isinstance(value, Mapping) else [("", value)]
        for part, path in parts:
            ui = f"[open]({shown[what]})" if what in shown and not part else ""
            lines.append(f"| {what}{' ' + part if part else ''} | [{_name(path)}]({_file_url(str(path))}) | {ui} |")
    return "\n".join(lines) + "\n"


def _where(ref: ArtifactRef) -> str:
    """Where users find `ref`: its URL under a URL artifact root, else its local path."""
    return ref.location


def _ref_paths(refs: Mapping[str, Any]) -> dict[str, str | dict[str, str]]:
    out: dict[str, str | dict[str, str]] = {}
    for name, value in refs.items():
        if isinstance(value, ArtifactRef):
            out[name] = _where(value)
        elif isinstance(value, Mapping):
            out[name] = {k: _where(v) for k, v in value.items() if isinstance(v, ArtifactRef)}
    return out


def _in_root(summary_path: str, value: Any) -> Any:
    """`value` as a local path or URL below the root `summary_path` lies in (`storage.in_root`).

    `value` is a path summary.json stores, relative to its artifact root, or a mapping of them; None stays None.
    """
    if isinstance(value, Mapping):
        return {k: _in_root(summary_path, v) for k, v in value.items()}
    if not value:
        return value
    try:
        return str(storage.in_root(summary_path, str(value)))
    except Exception:  # noqa: BLE001 - a damaged entry is shown as stored, not resolved
        return str(value)


RUN_FILES = ("index_html", "report_md", "deletion_md", "plot_png", "roc_png", "deletion_png")
"""The run folder's files summary.json names (``runs/<folder>/<file>``)."""
RUN_TABLES = ("metrics_parquet", "scores_parquet", "roc_parquet", "comparison_parquet")
"""The artifacts summary.json names at top level (``<stage>/<file>``)."""


def _run_artifacts(path: str, summary: Mapping[str, Any]) -> list[tuple[str, str, Any, str]]:
    """(type, key, data, description) of a pipeline or audit run's ``summary.json``.

    Its paths are read below the artifact root the file lies in (`_in_root`).
    """
    at = {k: _in_root(path, summary.get(k)) for k in (*RUN_FILES, *RUN_TABLES)}
    md_bytes = _read(at["report_md"]) or b""
    md = md_bytes.decode()
    title = md.splitlines()[0].removeprefix("# ") if md else str(summary["run"]["name"])
    plots = {"Before / after / oracle": at["plot_png"], "Membership ROC": at["roc_png"]}
    out = [
        ("markdown", "qmu-report", markdown_with_images(md, _present(plots), before="## Membership attacks"), title),
        ("table", "qmu-comparison", json.dumps(report.table_rows(summary["models"])), title),
        ("table", "qmu-attacks", json.dumps(report.attack_rows(summary["models"])), "Every attack on every model"),
    ]
    if at["deletion_md"]:
        deletion = (_read(at["deletion_md"]) or b"").decode()
        images = _present({"Every method against the oracle": at["deletion_png"]})
        out.append(("markdown", "qmu-deletion", markdown_with_images(deletion, images), "Deletion report"))
    files: dict[str, Any] = {"summary.json": path}
    files |= {k: at[k] for k in RUN_FILES}
    files |= {k: at[k] for k in RUN_TABLES}
    files |= {f"artifact {k}": _in_root(path, v) for k, v in summary.get("artifacts", {}).items()}
    pages = {
        "report_md": "qmu-report",
        "plot_png": "qmu-report",
        "roc_png": "qmu-report",
        "deletion_md": "qmu-deletion",
        "deletion_png": "qmu-deletion",
        "comparison_parquet": "qmu-comparison",
        "metrics_parquet": "qmu-attacks",
    }

    def files_table(ids: Mapping[str, UUID]) -> str:
        shown = {what: f"/artifacts/artifact/{ids[key]}" for what, key in pages.items() if key in ids}
        return files_markdown(title, files, shown)

    out.append(("markdown", "qmu-files", files_table, f"Files of run {summary['run']['name']}"))
    return out


def _present(paths: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in paths.items() if v}


def _hardware_artifacts(
    path: str, summary: Mapping[str, Any], refs: Mapping[str, Any]
) -> list[tuple[str, str, Any, str]]:
    """(type, key, data, description) of a hardware or shot-count report (``<name>.json``)."""
    stem = PurePosixPath(path).stem  # hardware or shots
    sibling = str(path)[: -len(".json")]
    title = str(summary.get("title", stem))
    md = (_read(sibling + ".md") or b"").decode() or f"# {title}\n"
    rows = [{k: report.rounded(v) for k, v in row.items()} for row in summary.get("rows", [])]
    files = {f"{stem}.json": path, f"{stem}.md": sibling + ".md", f"{stem}.png": sibling + ".png", **_ref_paths(refs)}
    return [
        ("markdown", f"qmu-{stem}-report", markdown_with_images(md, {title: sibling + ".png"}), title),
        ("table", f"qmu-{stem}", json.dumps(rows), title),
        ("markdown", f"qmu-{stem}-files", files_markdown(title, files), f"Files of {title}"),
    ]


def show_run(path: str, refs: Mapping[str, Any] | None = None) -> str:
    """Publish the report whose JSON is at `path` as artifacts of the current flow run (module doc).

    `refs` ({name: ArtifactRef or {part: ArtifactRef}}) adds their files to the Files table. Returns `path`.
    """
    flow_run_id = _flow_run_id()
    raw = _read(path)
    if flow_run_id is None or raw is None:
        logger.info(f"not publishing {path} to the Prefect UI (no flow run, or the file cannot be read)")
        return path
    summary = json.loads(raw)
    made = _run_artifacts(path, summary) if "models" in summary else _hardware_artifacts(path, summary, refs or {})
    ids: dict[str, UUID] = {}

    def publish(client: SyncPrefectClient) -> bool:
        for kind, key, data, description in made:  # a callable (the files table) links to those before it
            ids[key] = _create(client, flow_run_id, kind, key, data(ids) if callable(data) else data, description)
        return True

    if not best_effort(publish, timeout_s=PUBLISH_TIMEOUT_S):  # the run's files are written; the UI is extra
        logger.warning(f"Could not publish {path} to the Prefect UI (it did not answer); the files are complete.")
    return path


def track(futures: Iterable[Any], label: str, *, key: str = "qmu-reference-models") -> None:
    """A progress artifact of the flow run, ``"<label> k/n"``, advanced as each of `futures` finishes.

    Anything without ``add_done_callback`` counts as finished.
    """
    items = list(futures)
    flow_run_id = _flow_run_id()
    if flow_run_id is None or not items:
        return
    artifact_id = best_effort(
        lambda client: _create(client, flow_run_id, "progress", key, 0.0, f"{label} 0/{len(items)}")
    )
    if artifact_id is None:  # no bar, same run
        return
    lock = threading.Lock()
    done = [0]
    # The callbacks run in whichever thread finishes a future, outside this flow's settings
    # context: without it, `get_client` would start Prefect's own temporary server.
    api = {PREFECT_API_URL: PREFECT_API_URL.value(), PREFECT_API_KEY: PREFECT_API_KEY.value()}

    def finished(_: Any) -> None:
        with lock:
            done[0] += 1
            update = ArtifactUpdate(
                data=round(100.0 * done[0] / len(items), 1), description=f"{label} {done[0]}/{len(items)}"
            )
            best_effort(lambda client: client.update_artifact(artifact_id=artifact_id, artifact=update), api)

    for item in items:
        if hasattr(item, "add_done_callback"):
            item.add_done_callback(finished)
        else:
            finished(item)
