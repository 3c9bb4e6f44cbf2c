"""The paper's study (`qmu reproduce`): its runs, the paper's claims, and each claim's verdict.

`studies` expands a `ReproduceConfig` into ordinary QMU runs (`qmu_core.config.reproduce`).
`claims` reads what those runs wrote (each simulation run's summary.json, each device run's
hardware.json, the shot study's shots.json) and sets every claim of the paper beside our number:

* a row per (claim, model, method, setting): our mean and 95 % CI over the training seeds
  (`qmu_core.unlearning.intervals`), the paper's number (`PAPER`, from the paper's abstract) and a
  verdict, ``reproduced``, ``not reproduced`` or ``not comparable``, with its reason;
* the verdict rule is fixed here, not tuned to the outcome: a number is reproduced when the
  paper's value lies in our CI or within `TOLERANCE` of our mean; "accuracy preserved" when a
  method's retained test accuracy is within `TOLERANCE` of the model's before unlearning;
* the paper's protocol scores the attack partly on records it was trained on (`attack.protocol`).
  Its pitfall is shown by its controls in the same row: the held-out records of the forget class,
  which no model trained on, and the retrain oracle, which never saw the forget set. When a
  control reaches half the forget set's success or more, most of the number measures the class,
  not membership, and the row says so.

`qmu_core.report.reproduction` writes REPRODUCTION.md, its data and its figure from the rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from qmu_core.config import QMUConfig, ReproduceConfig, preset
from qmu_core.config.overrides import apply_overrides
from qmu_core.errors import ConfigError
from qmu_core.identity import Which

__all__ = ["PAPER", "TOLERANCE", "Row", "Study", "claims", "studies"]

TOLERANCE = 0.10
"""How far our mean may sit from the paper's number (absolute, a rate or an accuracy) and still count
as reproduced when the paper's number is outside our CI. The paper gives no uncertainty."""

PAPER: dict[str, float] = {
    "before_simulation": 0.902,
    "before_device": 0.753,
    "after_simulation": 0.0,
    "after_device_low": 0.009,
    "after_device_high": 0.077,
    "after_device_mean": 0.037,
}
"""The paper's numbers (its abstract; ../shared/PAPER.md): MIA success on the forget set."""

PAPER_METHODS = ("ga", "ssd", "rga")
"""The paper's three methods; QMU's others (SalUn, fine-tune) are shown beside them."""

PAPER_ATTACK = "paper"
"""The paper's attack (`qmu_core.attacks.paper`): its success on the forget set is the paper's number."""

Verdict = Literal["reproduced", "not reproduced", "not comparable"]


@dataclass(frozen=True)
class Study:
    """One run of the study (`studies`)."""

    key: str  # ``paper/shadow``, ``paper/paper``, ``device/weber``, ``shots/willow_pink``
    kind: Literal["simulation", "device", "shots"]
    preset: str
    protocol: str
    processor: str | None
    config: QMUConfig


def studies(rc: ReproduceConfig) -> list[Study]:
    """The runs of the paper's study, in the order they run (module doc of `qmu_core.config.reproduce`)."""
    common: dict[str, Any] = {
        "run": {"artifact_root": rc.artifact_root},
        "data": {"mnist_path": rc.mnist_path, "forget": "class", "forget_class": 4},
    }
    out: list[Study] = []

    def make(name: str, **extra: Any) -> QMUConfig:
        merged = {**common, **extra}
        merged["run"], merged["data"] = common["run"], {**common["data"], **extra.get("data", {})}
        try:
            return apply_overrides(preset(name, **merged), list(rc.overrides))
        except ConfigError as exc:
            raise ConfigError(f"reproduce: the {name!r} run of the study: {exc}") from None

    for model in rc.models:
        for protocol in ("shadow", "paper"):
            headline = {"headline": PAPER_ATTACK} if protocol == "paper" else {}
            cfg = make(model, unlearn={"seeds": rc.seeds}, attack={"protocol": protocol, **headline})
            out.append(Study(f"{model}/{protocol}", "simulation", model, protocol, None, cfg))
    device = {"protocol": "paper", "headline": PAPER_ATTACK}
    for processor in rc.processors:
        sampler = {"kind": "emulator", "noise": "processor", "processor": processor}
        cfg = make("paper_angle", attack=device, hardware={"sampler": sampler})
        out.append(Study(f"device/{processor}", "device", "paper_angle", "paper", processor, cfg))
    if rc.processors and rc.shots:
        sampler = {"kind": "emulator", "noise": "processor", "processor": rc.processors[0]}
        cfg = make("paper_angle", attack=device, hardware={"sampler": sampler, "shots": list(rc.shots)})
        out.append(Study(f"shots/{rc.processors[0]}", "shots", "paper_angle", "paper", rc.processors[0], cfg))
    return out


@dataclass
class Row:
    """One claim of the paper beside our number."""

    claim: str
    model: str
    setting: str  # simulation, or the device and its noise
    method: str  # before, a method, or retrain (the oracle)
    protocol: str
    ours: float | None
    ci: tuple[float | None, float | None] | None
    paper: str
    verdict: Verdict
    why: str
    controls: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the data file beside REPRODUCTION.md)."""
        return asdict(self)


def _finite(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _cell(entry: Mapping[str, Any] | None) -> tuple[float | None, tuple[float | None, float | None] | None]:
    if not entry:
        return None, None
    ci = entry.get("ci") or [None, None]
    return _finite(entry.get("mean")), (_finite(ci[0]), _finite(ci[1]))


def _near(ours: float | None, ci: Any, paper: float) -> bool:
    if ours is None:
        return False
    lo, hi = ci if ci else (None, None)
    inside = lo is not None and hi is not None and lo - 1e-12 <= paper <= hi + 1e-12
    return inside or abs(ours - paper) <= TOLERANCE


def _class_not_membership(ours: float | None, control: float | None) -> bool:
    """A high success of which a control (records, or a model, that never met the forget set) reaches half or more."""
    return ours is not None and ours >= 0.5 and control is not None and control >= ours / 2


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _leak_rows(key: str, summary: Mapping[str, Any]) -> list[Row]:
    """MIA success on the forget set, before and after each method, in simulation: one model, one protocol."""
    model, protocol = key.split("/")
    methods = summary["deletion"]["methods"]
    oracle, _ = _cell(methods.get("retrain", {}).get(f"{PAPER_ATTACK}:forget_success"))
    n = summary["deletion"].get("repeats", 1)
    out = []
    for method, entry in methods.items():
        if method == "retrain":
            continue
        ours, ci = _cell(entry.get(f"{PAPER_ATTACK}:forget_success"))
        control, _ = _cell(entry.get(f"{PAPER_ATTACK}:forget_control"))
        before = method == "noop"
        paper = PAPER["before_simulation"] if before else PAPER["after_simulation"]
        claim = "MIA success on the forget set, before unlearning" if before else "MIA success after unlearning"
        controls = {"held-out forget-class records": control, "retrain oracle": oracle}
        if protocol != "paper":
            verdict: Verdict = "not comparable"
            why = (
                "the sound protocol: the attack is fitted on reference models, never on the target's members, "
                "as the paper's was"
            )
        elif before and not _near(ours, ci, float(paper)):
            verdict, why = "not reproduced", f"{_pct(ours)} against the paper's {_pct(paper)} ({_seeds(n)})"
        elif not before and method not in PAPER_METHODS:
            verdict, why = "not comparable", "a method the paper did not run"
        else:
            verdict = "reproduced" if _near(ours, ci, float(paper)) else "not reproduced"
            why = f"{_pct(ours)} against the paper's {_pct(paper)} ({_seeds(n)})"
        if protocol == "paper" and (_class_not_membership(ours, control) or _class_not_membership(ours, oracle)):
            why += (
                f"; but records never trained on score {_pct(control)} and the oracle {_pct(oracle)}: "
                "most of the number follows the class, not membership"
            )
        name = "before" if before else method
        out.append(Row(claim, model, "simulation", name, protocol, ours, ci, _pct(paper), verdict, why, controls))
    return out


def _simulated(
    claim: str,
    key: str,
    method: str,
    ours: float | None,
    ci: Any,
    paper: str,
    verdict: Verdict,
    why: str,
    controls: dict[str, float | None],
) -> Row:
    """A simulation row of study run `key` (``model/protocol``)."""
    model, protocol = key.split("/")
    return Row(claim, model, "simulation", method, protocol, ours, ci, paper, verdict, why, controls)


def _accuracy_rows(key: str, summary: Mapping[str, Any]) -> list[Row]:
    """Retained test accuracy after each method against before unlearning ("preserved")."""
    methods = summary["deletion"]["methods"]
    before, _ = _cell(methods["noop"]["retain_test_acc"])
    out = []
    for method, entry in methods.items():
        if method == "noop":
            continue
        ours, ci = _cell(entry["retain_test_acc"])
        kept = ours is not None and before is not None and ours >= before - TOLERANCE
        verdict: Verdict = "reproduced" if kept else "not reproduced"
        why = f"{_pct(ours)} after, {_pct(before)} before (preserved: within {TOLERANCE:.2f})"
        if method not in (*PAPER_METHODS, "retrain"):
            verdict, why = "not comparable", "a method the paper did not run; " + why
        controls = {"before unlearning": before}
        out.append(_simulated("retained test accuracy", key, method, ours, ci, "preserved", verdict, why, controls))
    return out


def _cost_rows(key: str, summary: Mapping[str, Any]) -> list[Row]:
    """Each method's wall time and circuit evaluations (the paper gives no numbers)."""
    out = []
    for method, entry in summary["deletion"]["methods"].items():
        if method == "noop":
            continue
        ours, ci = _cell(entry.get("wall_s"))
        if ci is not None and ci[0] is not None:  # a time is never negative: the seeds' t-interval is cut at 0
            ci = (max(0.0, ci[0]), ci[1])
        evals, _ = _cell(entry.get("circuit_evals"))
        why = f"{_num(evals)} circuit evaluations; the paper compares cost in words only"
        controls = {"circuit evaluations": evals}
        row = _simulated("cost (wall seconds)", key, method, ours, ci, "no number", "not comparable", why, controls)
        out.append(row)
    return out


def _ulira_rows(key: str, summary: Mapping[str, Any]) -> list[Row]:
    """U-LiRA's AUC per method (not in the paper): can an attacker tell it from a model retrained without U?"""
    model, protocol = key.split("/")
    out = []
    for method, entry in summary["deletion"]["methods"].items():
        if "ulira_auc" not in entry:
            continue
        ours, ci = _cell(entry["ulira_auc"])
        population, _ = _cell(entry.get("mia_forget_auc"))
        name = "before" if method == "noop" else method
        why = "0.5: indistinguishable from retraining without the forget set; the paper has no such audit"
        controls = {"population forget-set AUC": population}
        row = Row("U-LiRA AUC", model, "simulation", name, protocol, ours, ci, "—", "not comparable", why, controls)
        out.append(row)
    return out


def _device_rows(key: str, hardware: Mapping[str, Any]) -> list[Row]:
    """MIA success on the forget set measured through the emulated device, before and after each method."""
    processor = key.split("/", 1)[1]
    config = hardware.get("config", {})
    encoding = config.get("model", {}).get("encoding", "?")
    shots = config.get("hardware", {}).get("repetitions")
    rows = {(r["source"], r["phase"]): r for r in hardware["rows"]}
    out = []
    oracle = _finite(rows.get(("measured", "oracle"), {}).get("mia_forget_success"))
    for (source, phase), row in rows.items():
        which = Which.of_phase(phase)
        if source != "measured" or which is None or which.role == "oracle":  # the oracle is a control of every row
            continue
        before = which.role == "before"
        method = which.short
        ours = _finite(row.get("mia_forget_success"))
        paper = _pct(PAPER["before_device"]) if before else "0.9–7.7 % (mean 3.7 %)"  # after: across its runs
        simulated = _finite(rows.get(("simulation", phase), {}).get("mia_forget_success"))
        claim = "MIA success on the forget set, before unlearning" if before else "MIA success after unlearning"
        why = (
            f"{encoding}-encoded `paper_angle` (the paper's device model is unknown), {processor}'s emulated "
            f"calibration noise, {shots} shots, one seed, {_pct(ours)} measured against {_pct(simulated)} in simulation"
        )
        controls = {"same records in simulation": simulated, "retrain oracle, measured": oracle}
        setting = f"device ({processor}, emulated)"
        out.append(
            Row(claim, "paper_angle", setting, method, "paper", ours, None, paper, "not comparable", why, controls)
        )
    return out


def claims(
    summaries: Mapping[str, Mapping[str, Any]], hardware: Mapping[str, Mapping[str, Any]]
) -> dict[str, list[Row]]:
    """Every claim's rows by table: ``leak``, ``device``, ``accuracy``, ``ulira``, ``cost`` (module doc).

    Args:
        summaries: summary.json of each simulation run, by study key (``paper/shadow``).
        hardware: hardware.json of each device run, by study key (``device/weber``).
    """
    tables: dict[str, list[Row]] = {"leak": [], "device": [], "accuracy": [], "ulira": [], "cost": []}
    for key, summary in summaries.items():
        tables["leak"] += _leak_rows(key, summary)
        if key.endswith("/paper"):  # the models are the same under both protocols
            continue
        tables["accuracy"] += _accuracy_rows(key, summary)
        tables["ulira"] += _ulira_rows(key, summary)
        tables["cost"] += _cost_rows(key, summary)
    for key, report in hardware.items():
        tables["device"] += _device_rows(key, report)
    return tables


def shot_table(shots: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The shot study's forget-set success and AUC per shot count and phase (shots.json rows, measured ones)."""
    keep = ("mia_forget_success", "mia_forget_auc", "mia_auc", "retain_test_acc")
    return [{"source": r["source"], "phase": r["phase"], **{k: r.get(k) for k in keep}} for r in shots["rows"]]


def _pct(x: float | str | None) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, str):
        return x
    return f"{100 * x:.1f} %"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def verdict_counts(tables: Mapping[str, Sequence[Row]]) -> dict[str, int]:
    """How many rows got each verdict, over every table."""
    counts: dict[str, int] = {"reproduced": 0, "not reproduced": 0, "not comparable": 0}
    for rows in tables.values():
        for row in rows:
            counts[row.verdict] += 1
    return counts
