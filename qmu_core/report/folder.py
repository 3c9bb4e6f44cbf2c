"""A run's folder: ``<root>/runs/<folder>/`` with summary.json, report.md, index.html and the plots.

`publish` reads the run's artifacts, `_write_reports` writes report.md (and deletion.md for a
run that unlearned) and the plots into a staged folder, `_summary` assembles summary.json, and
the staged folder becomes the run's folder when summary.json, the last file, is written.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qmu_core import storage
from qmu_core.artifacts import ArtifactRef, atomic_path, companion, read, read_facts
from qmu_core.config import QMUConfig
from qmu_core.config.overrides import changed_fields, changed_markdown
from qmu_core.errors import ArtifactError
from qmu_core.external import EXTERNAL
from qmu_core.identity import Which, lineup
from qmu_core.provenance import AuditFacts, ModelFacts
from qmu_core.report.external import external_markdown, recipe_check, training_accuracies
from qmu_core.report.tables import (
    PATHS_NOTE,
    Report,
    Summary,
    _with_auc,
    attack_tables,
    leak_questions,
    leak_rows,
    markdown,
    models_summary,
    notes,
    plot,
    run_warnings,
    title,
    unlearning_warnings,
    write_summary,
)
from qmu_core.rocplot import roc_plot
from qmu_core.splits import request_hash
from qmu_core.unlearning.report import Deletion, deletion_markdown, deletion_plot, deletion_summary, record_scores

__all__ = ["html_page", "publish"]

Artifacts = Mapping[str, ArtifactRef | Mapping[str, ArtifactRef]]


@dataclass
class _Run:
    """What `publish` read: the run's artifacts, its models by phase and its unlearning facts."""

    artifacts: Artifacts
    config: QMUConfig
    table: ArtifactRef
    scores: ArtifactRef
    comparison_ref: ArtifactRef | None
    roc: ArtifactRef
    audit: AuditFacts
    models: dict[str, Summary]  # repeat 0, by phase
    repeats: dict[str, Summary]  # "r<k>/<phase>"
    unlearned: dict[Which, ModelFacts]
    methods: list[str]
    comparison: pd.DataFrame | None

    @property
    def first(self) -> dict[str, ModelFacts]:
        """Facts of each method's repeat-0 model, by method."""
        return {w.method: f for w, f in self.unlearned.items() if not w.repeat and w.method}


@dataclass
class _Files:
    """What `_write_reports` wrote into the staged folder."""

    markdown: str
    plots: dict[str, Path]
    cautions: list[str]
    deletion_md: str | None = None
    deletion: dict[str, Any] | None = None
    external: dict[str, Any] | None = None


def _deletion(frame: pd.DataFrame, config: QMUConfig) -> Deletion:
    """The deletion request as the split table (`frame`) records it."""
    ids = frame.loc[(frame["role"] == "target_train") & frame["is_forget"], "sample_id"].to_numpy()
    kind = config.data.forget
    return Deletion(
        kind=kind,
        count=len(ids),
        sha256=request_hash(ids),
        forget_class=config.data.forget_class if kind == "class" else None,
        sample_ids=tuple(sorted(int(i) for i in ids)) if kind == "samples" else (),
    )


def _stop_rule(config: QMUConfig) -> str:
    u = config.unlearn
    if config.data.forget == "class":
        target = f"forget-set training accuracy at or below {u.stop_forget_acc} (`unlearn.stop_forget_acc`)"
    else:
        target = (
            "a forget-set mean -log p(y|x) at or above the model's own mean on held-out records (the deleted records "
            "then look never-trained; their accuracy need not fall, the oracle's does not)"
        )
    return (
        f"GA, RGA and SalUn stop after the first pass with {target}, or after {u.max_epochs} passes "
        f"(`unlearn.max_epochs`); SSD dampens once, fine-tune trains {u.finetune_epochs} epochs; "
        "all report whether they reached the target. Guard: no method may lower the accuracy on up to "
        f"{u.guard_records} held-out records of the retained classes by more than {u.guard_drop} (a pass that "
        "does is undone and the method stops); step size: each method's times "
        f"{', '.join(f'{f:g}' for f in u.step_scales)}, the first that reaches the target within the guard is "
        "kept (docs/methods.md#retained-accuracy-guard-and-step-size-rule)."
    )


def _unlearned_facts(artifacts: Artifacts, phases: Sequence[str]) -> dict[Which, ModelFacts]:
    """ModelFacts of every unlearned model (``after_*`` phases, every repeat)."""
    out = {}
    for phase in phases:
        ref, which = artifacts.get(phase), Which.of_phase(phase)
        if isinstance(ref, ArtifactRef) and which is not None and which.role == "unlearned":
            out[which] = read_facts(ref, ModelFacts)
    return out


def _model_extras(models: dict[str, Summary], comparison: pd.DataFrame | None, methods: Sequence[str]) -> None:
    """Add ``wall_s``, ``gap_to_oracle`` and the comparison's other numbers to summary models (repeat 0)."""
    if comparison is None:
        return
    first = comparison[comparison["repeat"] == 0]
    for which in lineup(methods):
        phase = which.phase
        if phase not in models:
            continue
        part = first[first["method"] == which.row]
        got = dict(zip(part["metric"], part["value"], strict=True))
        gaps = dict(zip(part["metric"], part["gap"], strict=True))
        entry = models[phase]
        for key in ("wall_s", "circuit_evals", "relearn_steps", "js_to_oracle", "reached_stop"):
            if key in got:
                value = got[key]
                entry[key] = None if math.isnan(value) else (bool(value) if key == "reached_stop" else float(value))
        entry["gap_to_oracle"] = {
            k: (None if math.isnan(float(g)) else float(g))
            for k, g in gaps.items()
            if k not in ("reached_stop", "passes")
        }


def _captioned(plots: Mapping[str, Path]) -> dict[str, Path]:
    """The run's two plots by their captions in report.md."""
    captions = {"qmu-comparison-plot": "Before / after / oracle", "qmu-roc-plot": "Membership ROC"}
    return {captions[k]: v for k, v in plots.items() if k in captions}


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 6px}}img{{max-width:100%}}
</style></head><body>
{body}
<h2>Files of this run</h2>
<ul>
{files}
</ul>
</body></html>
"""


def html_page(title: str, markdowns: Sequence[str], run_dir: Path) -> str:
    """``index.html`` of a run folder.

    Its reports rendered, plots linked by their file names (so a browser opening the folder shows
    them), and a list of the folder's files.
    """
    import markdown as md_lib  # type: ignore[import-untyped]

    body = "\n<hr>\n".join(md_lib.markdown(m, extensions=["tables"]) for m in markdowns if m)
    names = sorted({p.name for p in run_dir.iterdir() if p.is_file() and storage.temp_owner(p) is None})
    names = sorted({*names, "summary.json"} - {"index.html"})
    files = "\n".join(f'<li><a href="{html.escape(n)}">{html.escape(n)}</a></li>' for n in names)
    return _HTML.format(title=html.escape(title), body=body, files=files)


def publish(artifacts: Artifacts, *, run_name: str, config: QMUConfig, wall_time_s: float) -> Report:
    """Write ``<root>/runs/<folder>/`` (`storage.run_folder` of `run_name`).

    The folder holds summary.json, report.md, index.html, comparison.png and roc.png, and (when
    the run unlearned) deletion.md and deletion.png. The files go into a hidden temporary folder
    that is renamed to the run's folder once summary.json, the last, is written
    (`storage.staged_run_folder`): a run folder is whole or absent, and a failure (disk full)
    removes the temporary folder. summary.json names every file relative to the artifact root
    (``model/<key>.parquet``, ``runs/<folder>/report.md``), so a copied or moved root keeps
    working (`storage.in_root` resolves them).

    Args:
        artifacts: Every artifact of the run, by name; a mapping value groups several
            (``{"outputs": {"before": ref, ...}}``). Needs ``metrics`` and ``mia_scores``;
            the unlearned models as ``after_<method>`` (``r<k>/after_<method>`` for repeats),
            ``comparison`` and ``splits`` when the run unlearned.
        run_name: The run's name (directory name).
        config: The run's config (stored in the summary).
        wall_time_s: Seconds since the run started.

    Returns:
        Where summary.json is, and report.md's Markdown.

    Raises:
        ArtifactError: If `metrics` or `mia_scores` is missing.
    """
    run = _read(artifacts, config)
    with storage.staged_run_folder(run.table.root, run_name) as staged:  # for a URL root: in the mirror
        files = _write_reports(run, staged.tmp)
        summary = _summary(run, files, run_name=run_name, wall_time_s=wall_time_s)
        return Report(_commit(staged, summary, files, run.table.root), files.markdown)


def _read(artifacts: Artifacts, config: QMUConfig) -> _Run:
    """The run's models (repeat 0 and the repeats), unlearning facts and comparison."""
    table, scores, comparison_ref = (artifacts.get(k) for k in ("metrics", "mia_scores", "comparison"))
    if not isinstance(table, ArtifactRef) or not isinstance(scores, ArtifactRef):
        raise ArtifactError("publish needs the run's `metrics` and `mia_scores` artifacts.")
    everything = models_summary(read(table))
    named = {p: Which.of_phase(p) for p in everything}  # None: a model `qmu audit` was given by another name
    repeat = {p: w.repeat if w is not None else 0 for p, w in named.items()}
    models = {p: v for p, v in everything.items() if repeat[p] == 0}
    methods = [w.method for p in models if (w := named[p]) is not None and w.role == "unlearned" and w.method]
    comparison = read(comparison_ref) if isinstance(comparison_ref, ArtifactRef) else None
    _model_extras(models, comparison, methods)
    return _Run(
        artifacts=artifacts,
        config=config,
        table=table,
        scores=scores,
        comparison_ref=comparison_ref if isinstance(comparison_ref, ArtifactRef) else None,
        roc=companion(table, "roc"),
        audit=read_facts(scores, AuditFacts),
        models=models,
        repeats={p: v for p, v in everything.items() if repeat[p] > 0},
        unlearned=_unlearned_facts(artifacts, list(everything)),
        methods=methods,
        comparison=comparison,
    )


def _write_reports(run: _Run, run_dir: Path) -> _Files:
    """report.md, index.html and the plots (and the deletion report) in `run_dir`."""
    config, heading, headline = run.config, title(run.config), run.config.attack.headline
    roc = read(run.roc)
    plots = {
        "qmu-comparison-plot": plot(run.models, run_dir / "comparison.png", title=heading),
        "qmu-roc-plot": roc_plot(
            _with_auc(roc[roc["phase"].isin(list(run.models))], run.models),
            run_dir / "roc.png",
            title=f"{heading}: membership ROC (log-log)",
        ),
    }
    files = _Files("", plots, run_warnings(config, run.artifacts) + unlearning_warnings(run.models))
    md = markdown(run.models, title=heading, notes=notes(run.first, run.audit, headline=headline))
    md += "\n## Plots\n\n" + "".join(f"![{k}]({v.name})\n\n" for k, v in _captioned(plots).items())
    md += "\n" + "\n".join(leak_questions(run.models, run.repeats)) + "\n"
    md += "\n" + "\n".join(attack_tables(run.models, run.audit)) + "\n"
    md += _external(run, files)
    md += "\n" + changed_markdown(config)
    if files.cautions:
        md += "\n## Warnings\n\n" + "".join(f"- {w}\n" for w in files.cautions)
    splits = run.artifacts.get("splits")
    if run.comparison is not None and isinstance(splits, ArtifactRef):
        _write_deletion(run, run.comparison, read(splits), run_dir, files)
        md += "\nThe deletion report (every method against the oracle, with verdicts) is deletion.md.\n"
    files.markdown = md
    with atomic_path(run_dir / "report.md") as tmp:
        tmp.write_text(md)
    with atomic_path(run_dir / "index.html") as tmp:
        tmp.write_text(html_page(heading, [md, files.deletion_md or ""], run_dir))
    return files


def _external(run: _Run, files: _Files) -> str:
    """The section on a model trained outside QMU (`qmu_core.report.external`), or nothing."""
    splits, given = run.artifacts.get("splits"), run.artifacts.get(EXTERNAL)
    if not isinstance(splits, ArtifactRef) or not isinstance(given, ArtifactRef):
        return ""
    held = run.artifacts.get("recipe_outputs")
    trainings = [read(r) for r in held.values()] if isinstance(held, Mapping) else []
    files.external = recipe_check(run.models, read(splits), training_accuracies(trainings))
    if files.external is None:
        return ""
    t = run.config.train
    recipe = (
        f"{t.epochs} epochs of {t.optimizer}, batch size {t.batch_size}, learning rate {t.learning_rate}, "
        f"run.seed {run.config.run.seed}"
    )
    return "\n" + external_markdown(files.external, weights_note=read_facts(given, ModelFacts).note, train=recipe)


def _not_reached(unlearned: Mapping[Which, ModelFacts]) -> dict[str, str]:
    """Each unlearned model that did not reach its stopping rule, and where it ended."""
    return {
        w.method + (f" (repeat {w.repeat})" if w.repeat else ""): (
            f"forget-set accuracy {f.history[-1].get('forget_acc', float('nan')):.3f}"
            + (f", loss {f.history[-1]['forget_loss']:.3f}" if "forget_loss" in f.history[-1] else "")
            + f" after {f.passes} pass(es); target: "
            f"{f.stop_target or f'forget-set accuracy <= {f.stop_acc}'}" + (f"; {f.note}" if f.note else "")
        )
        for w, f in unlearned.items()
        if f.reached_stop is False and f.history and w.method
    }


def _write_deletion(
    run: _Run, comparison: pd.DataFrame, split_frame: pd.DataFrame, run_dir: Path, files: _Files
) -> None:
    """deletion.md and deletion.png: every method against the oracle, with verdicts."""
    headline, heading = run.config.attack.headline, title(run.config)
    deletion = _deletion(split_frame, run.config)
    not_reached = _not_reached(run.unlearned)
    records = None
    if deletion.kind == "samples":
        cols = {w.short: w.phase for w in lineup(run.methods)}
        records = record_scores(read(run.scores), headline=headline, phases=cols, sample_ids=deletion.sample_ids)
        labels = split_frame.set_index("sample_id")["label"]
        records.insert(1, "label", records["sample_id"].map(labels))
    files.deletion_md = deletion_markdown(
        comparison,
        deletion,
        headline=headline,
        attacks=list(run.audit.thresholds),
        not_reached=not_reached,
        stop_rule=_stop_rule(run.config),
        records=records,
    )
    files.plots["qmu-deletion-plot"] = deletion_plot(
        comparison, run_dir / "deletion.png", title=f"{heading}: before / after / oracle"
    )
    with atomic_path(run_dir / "deletion.md") as tmp:
        tmp.write_text(files.deletion_md)
    files.deletion = deletion_summary(comparison, deletion, not_reached=list(not_reached), headline=headline)


def _paths(value: ArtifactRef | Mapping[str, ArtifactRef]) -> str | dict[str, str]:
    if isinstance(value, ArtifactRef):
        return value.rel
    return {k: v.rel for k, v in value.items()}


def _summary(run: _Run, files: _Files, *, run_name: str, wall_time_s: float) -> dict[str, Any]:
    """summary.json's content (its file names are filled in by `_commit`)."""
    config, first = run.config, run.first
    listed = {**run.artifacts, "roc": run.roc}
    splits = run.artifacts.get("splits")
    if isinstance(splits, ArtifactRef):
        listed["feature_map"] = companion(splits, "feature_map")
    ga = first.get("ga") or next(iter(first.values()), None)
    return {
        "run": {
            "name": run_name,
            "folder": "",  # set when the folder is chosen (`_commit`)
            "seed": config.run.seed,
            "wall_time_s": round(wall_time_s, 2),
        },
        "config": config.model_dump(mode="json"),
        "changed_from_preset": changed_fields(config),
        "mia_attack": config.attack.headline,
        "audit": run.audit.model_dump(),
        "models": run.models,
        "leak": leak_rows(run.models, run.repeats),
        "repeats": run.repeats,
        "unlearning": (
            {
                "method": ga.method or "ga",
                **ga.model_dump(exclude={"n_train"}),
                "methods": {m: f.model_dump(exclude={"n_train"}) for m, f in first.items()},
            }
            if ga
            else None
        ),
        "deletion": files.deletion,
        **({"external": files.external} if files.external is not None else {}),
        "artifacts": {k: _paths(v) for k, v in listed.items()},
        "warnings": files.cautions,
        "metrics_parquet": run.table.rel,
        "scores_parquet": run.scores.rel,
        "roc_parquet": run.roc.rel,
        "comparison_parquet": run.comparison_ref.rel if run.comparison_ref is not None else None,
        "paths": PATHS_NOTE,
    }


def _commit(staged: storage.StagedRun, summary: dict[str, Any], files: _Files, root: Path | str) -> Path | str:
    """Write summary.json last, rename the staged folder to the run's, and push it for a URL root.

    Returns:
        summary.json: the local file, or its URL for a URL root.
    """
    named = {
        "report_md": "report.md",
        "index_html": "index.html",
        "deletion_md": "deletion.md" if files.deletion_md else None,
        "plot_png": files.plots["qmu-comparison-plot"].name,
        "roc_png": files.plots["qmu-roc-plot"].name,
        "deletion_png": files.plots["qmu-deletion-plot"].name if "qmu-deletion-plot" in files.plots else None,
    }

    def write_last(rel: str) -> None:  # the folder's name is known only now
        summary["run"]["folder"] = rel.removeprefix("runs/")
        summary.update({k: f"{rel}/{name}" if name else None for k, name in named.items()})
        write_summary(staged.tmp / "summary.json", summary)

    run_rel = staged.commit(write_last)
    run_dir = storage.local_dir(root) / run_rel
    remote = storage.remote(root)
    if remote is None:
        return run_dir / "summary.json"
    # the run's files, then summary.json: a summary on the root means a whole run
    names = sorted(p.name for p in run_dir.iterdir() if p.is_file() and storage.temp_owner(p) is None)
    remote.push([f"{run_rel}/{n}" for n in names if n != "summary.json"], last=f"{run_rel}/summary.json")
    return remote.location(f"{run_rel}/summary.json")
