"""Both Prefect UIs run a deployment from their Custom run form, end to end.

Everything is real: `prefect server start` (UI included) in a temporary PREFECT_HOME, the
`qmu-process` work pool, `QMU_REPO=<repo> prefect --no-prompt deploy --all` from the repository
root as prefect.yaml's header documents it, a `prefect worker start` subprocess, and Debian's
Chromium driven by Playwright (tests/prefect_procs.py starts and stops the processes).

Prefect serves two UIs: V1 at `/deployments` (the URL docs/running.md, `prefect deploy` and workers
print) and V2 at `/v2/` (where the front page redirects). Each gets one Custom run with exactly
one field changed, `train.epochs` to 2:

* V1: `/deployments` -> `default` -> Run -> Custom run. V1 draws a `"type": "boolean"` as a
  switch in the off position and sends it as `false` untouched, which turned off what the preset
  turns on; the form schema now offers bools as a true/false choice that starts empty.
* V2: the front page -> Deployments -> `smoke` -> Run -> Custom run.

For each run the test checks what the form sent and, once the run completed, the config the run
resolved (`summary.json`'s `config`): the preset's config with that one field changed, nothing
else. It then opens the run's deletion report (the `qmu-deletion` artifact) in both UIs, where
every image must have loaded, and takes screenshots into data/screenshots/: the flow-run lists of
both UIs (names and tags), the run pages, the deletion report and the comparison table.

Artifacts land in the repository's data/artifacts: the pull step's directory is resolved when
deploying. The worker runs with PREFECT_TASKS_REFRESH_CACHE=true so that no stage is reused from
there: each run computes everything.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import prefect_procs as pp

ROOT = pp.ROOT
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "data" / "screenshots"
RUNS = ROOT / "data" / "artifacts" / "runs"
FLOW, TABLE_KEY, DELETION_KEY = "qmu-pipeline", "qmu-comparison", "qmu-deletion"
RUN_TIMEOUT = 900.0  # s; both runs share 2 cores: `default` with 2 epochs takes 1-3 min alone, `smoke` 1-2
UI_TIMEOUT_MS = 60_000  # per browser action; the machine is busy while runs train
EPOCHS = 2  # the one field each form changes (tiny trains 3, default 60)


@pytest.fixture
def processes() -> Iterator[pp.Processes]:
    with pp.processes() as procs:
        yield procs


def _v1_box(page: Any, label: str) -> Any:
    """The box of V1 form field `label` (V1's <label> points at no input: find the field by its box)."""
    return page.locator(
        "xpath=//span[contains(@class,'schema-form-property__label') and normalize-space(.)="
        f"'{label} (Optional)']/ancestor::div[contains(concat(' ',@class,' '),' schema-form-property ')][1]"
    )


def _v1_field(page: Any, label: str) -> Any:
    """The <input> of V1 form field `label`."""
    return _v1_box(page, label).locator("input")


def _submit(page: Any, server_log: Path, attempts: int = 12) -> tuple[str, dict[str, Any], int]:
    """Click Submit until the server takes the run.

    Returns its id, the parameters the UI sent and how many 503s came first (SQLite busy on
    2 cores: the form keeps its values, a user clicks again).
    """
    busy = 0
    for _ in range(attempts):
        with page.expect_response(lambda r: r.url.endswith("/create_flow_run") and r.request.method == "POST") as info:
            page.get_by_role("button", name="Submit", exact=True).click()
        response = info.value
        if response.ok:
            return str(response.json()["id"]), json.loads(response.request.post_data or "{}")["parameters"], busy
        if response.status != 503:
            break
        busy += 1
        page.wait_for_timeout(5000)
    pytest.fail(
        f"the UI's POST {response.url} answered {response.status} {response.text()} "
        f"({busy} times 503 before); server log {server_log}:\n{pp.tail(server_log)}"
    )


def _expected(preset_name: str) -> dict[str, Any]:
    from qmu_core.config import preset

    config = preset(preset_name).model_dump(mode="json")
    config["train"]["epochs"] = EPOCHS
    return config


def _diff(got: Any, want: Any, path: str = "") -> dict[str, tuple[Any, Any]]:
    """{dotted path: (got, want)} where two JSON trees differ."""
    if isinstance(got, dict) and isinstance(want, dict):
        out: dict[str, tuple[Any, Any]] = {}
        for key in sorted(got.keys() | want.keys()):
            out |= _diff(got.get(key), want.get(key), f"{path}{key}.")
        return out
    return {} if got == want else {path.rstrip("."): (got, want)}


def _summary(api: str, run: dict[str, Any], started: float) -> tuple[Path, dict[str, Any]]:
    """The run's summary.json: runs/<run name>/ under the repository's artifact root.

    Else the path in its `qmu-files` artifact; else the newest summary.json written since `started`.
    """
    candidates = [RUNS / run["name"] / "summary.json"]
    arts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}}).json()
    for art in arts:
        if art["key"] == "qmu-files":
            candidates += [Path(p) for p in re.findall(r"[^\s|()<>`\"']+summary\.json", str(art["data"]))]
    candidates += sorted(RUNS.glob("*/summary.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        path = path if path.is_absolute() else ROOT / path
        if path.is_file() and (path.parent.name == run["name"] or path.stat().st_mtime >= started):
            return path, json.loads(path.read_text())
    pytest.fail(f"no summary.json of flow run {run['name']} found (looked at {candidates[:5]}...)")


def _deletion_images(page: Any, url: str) -> list[tuple[str, int]]:
    """(src, its first 60 characters; naturalWidth) of every <img> on the artifact page `url`.

    Read once each has loaded or failed.
    """
    page.goto(url)
    page.get_by_text(re.compile("Deletion|deletion")).first.wait_for()
    page.wait_for_timeout(1500)
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=UI_TIMEOUT_MS)
    found = page.evaluate("() => [...document.images].map(i => [i.src, i.naturalWidth])")
    return [(str(src)[:60] + ("..." if len(str(src)) > 60 else ""), int(width)) for src, width in found]


@pytest.mark.browser
@pytest.mark.timeout(1800)
def test_custom_runs_from_both_prefect_uis(
    tmp_path: Path, processes: pp.Processes, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.is_file(), f"Chromium not found at {CHROMIUM}; install Debian's `chromium` package."
    started = time.monotonic()
    wall_start = time.time()
    home = tmp_path / "prefect-home"
    api, env = pp.start_server(processes, home, ui=True, PREFECT_TASKS_REFRESH_CACHE="true")
    server_log, worker_log = home / "server.log", tmp_path / "worker.log"
    pp.create_pool(env)
    pp.deploy(env)
    ids = {name: pp.deployment_id(api, name) for name in ("default", "smoke")}
    deployments = {name: httpx.get(f"{api}/deployments/{i}").json() for name, i in ids.items()}
    for name, dep in deployments.items():
        flow = httpx.get(f"{api}/flows/{dep['flow_id']}").json()
        assert flow["name"] == FLOW, f"deployment {name!r} runs flow {flow['name']!r}, expected {FLOW!r}"
    pp.start_worker(processes, env, worker_log)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    base = api.removesuffix("/api")
    runs: dict[str, dict[str, Any]] = {}  # ui: {deployment, preset, run_id, sent, busy}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)

            # V1: the documented URL (docs/running.md) -> default -> Run -> Custom run; one field: train.epochs.
            page.goto(base + "/deployments", wait_until="commit")
            page.locator(f"a[href$='/deployments/deployment/{ids['default']}']").first.click()
            expect(page).to_have_url(re.compile(f"/deployments/deployment/{ids['default']}"))
            assert "/v2/" not in page.url
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_role("button", name="Custom run", exact=True).click()
            epochs = _v1_field(page, "Epochs")
            expect(epochs).to_have_count(1)
            # No bool field may be a switch: V1 sends an untouched switch as `false`.
            expect(page.locator(".schema-form-property [role=switch]")).to_have_count(0)
            lira = _v1_box(page, "Lira Fixed Variance")
            expect(lira.locator("button.p-select-button__control")).to_have_count(1)  # a choice, not a switch
            assert epochs.input_value() == "", "V1's form shows a train.epochs the deployment does not set"
            epochs.fill(str(EPOCHS))
            lira.scroll_into_view_if_needed()  # V1 scrolls inside the page: a full-page shot shows the top only
            shots.append(SCREENSHOTS / "ui-v1-custom-run-form.png")
            page.screenshot(path=str(shots[-1]))
            run_id, sent, busy = _submit(page, server_log)
            runs["v1"] = {"deployment": "default", "run_id": run_id, "sent": sent, "busy": busy}

            # V2: the front page (it redirects to /v2/) -> Deployments -> smoke -> Run -> Custom run.
            # Wait for the navigation to commit only: with the V1 run busy on the server, the SPA's "load" event
            # once took over a minute (a flake at stop 42); the checks below wait for what they need.
            page.goto(base + "/", wait_until="commit")
            expect(page).to_have_url(re.compile("/v2/"))
            page.get_by_role("link", name="Deployments", exact=True).first.click()
            page.get_by_role("link", name="smoke", exact=True).first.click()
            expect(page).to_have_url(re.compile(f"/deployments/deployment/{ids['smoke']}"))
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Custom run").click()
            epochs = page.get_by_label("Epochs (Optional)", exact=True)
            expect(epochs).to_have_count(1)
            assert epochs.input_value() == "", "V2's form shows a train.epochs the deployment does not set"
            for field in ("Reupload", "Lira Fixed Variance", "Measure References"):  # choices, not switches
                expect(page.get_by_role("button", name=f"Select {field}", exact=True)).to_have_count(1)
                expect(page.get_by_role("switch", name=re.compile(field))).to_have_count(0)
            epochs.fill(str(EPOCHS))
            shots.append(SCREENSHOTS / "ui-v2-custom-run-form.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
            run_id, sent, busy = _submit(page, server_log)
            runs["v2"] = {"deployment": "smoke", "run_id": run_id, "sent": sent, "busy": busy}

            # What each form sent, as the run would resolve it: the preset plus train.epochs.
            from qmu_core.config import QMUConfig

            for ui, r in runs.items():
                dep = deployments[r["deployment"]]
                r["preset"] = dep["parameters"]["config"]["preset"]
                resolved = QMUConfig.model_validate(r["sent"]["config"]).model_dump(mode="json")
                diff = _diff(resolved, _expected(r["preset"]))
                assert not diff, (
                    f"{ui}'s Custom run form of deployment {r['deployment']!r} changed only train.epochs, but "
                    f"what it sent resolves differently from preset {r['preset']!r} in {diff} (sent, expected). "
                    f"The form sent {r['sent']}"
                )

            # Both runs must complete; each resolved exactly the preset plus that one field.
            for ui, r in runs.items():
                run = pp.wait_final(api, r["run_id"], processes, worker_log, RUN_TIMEOUT)
                assert run["state_type"] == "COMPLETED", (
                    f"flow run {run['name']} ({ui}) ended {run['state_type']}: {run['state'].get('message')}\n"
                    f"worker log {worker_log}:\n{pp.tail(worker_log)}"
                )
                r["run"] = run
                path, summary = _summary(api, run, wall_start)
                r["summary"] = path
                diff = _diff(summary["config"], _expected(r["preset"]))
                assert not diff, (
                    f"flow run {run['name']} ({ui}, deployment {r['deployment']!r}) resolved a config that differs "
                    f"from preset {r['preset']!r} plus train.epochs={EPOCHS} in {diff} (run, expected); {path}"
                )
                tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [r["run_id"]]}}})
                reused = sorted(t["name"] for t in tasks.json() if t["state_name"] == "Cached")
                assert not reused, f"flow run {run['name']} reused stages {reused} despite PREFECT_TASKS_REFRESH_CACHE"
                r["tasks"] = len(tasks.json())

            # Screenshots: both UIs' flow-run lists (names and tags), the run pages.
            for ui, url in (("v1", "/runs"), ("v2", "/v2/runs")):
                page.goto(base + url)
                for r in runs.values():
                    expect(page.get_by_text(r["run"]["name"], exact=True).first).to_be_visible()
                page.wait_for_timeout(1000)
                shots.append(SCREENSHOTS / f"ui-{ui}-runs.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
            for ui, prefix in (("v1", ""), ("v2", "/v2")):
                r = runs[ui]
                page.goto(f"{base}{prefix}/runs/flow-run/{r['run_id']}")
                expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
                page.wait_for_timeout(1000)
                shots.append(SCREENSHOTS / f"ui-{ui}-run-{r['deployment']}.png")
                page.screenshot(path=str(shots[-1]), full_page=True)

            # The deletion report in both UIs: every image loaded (natural width > 0).
            broken: dict[str, list[tuple[str, int]]] = {}
            for ui, prefix in (("v1", ""), ("v2", "/v2")):
                r = runs[ui]
                arts = httpx.post(
                    f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [r["run_id"]]}}}
                ).json()
                r["artifacts"] = sorted(a["key"] for a in arts if a["key"])
                deletion = next((a for a in arts if a["key"] == DELETION_KEY), None)
                assert deletion, f"flow run {r['run']['name']} has no {DELETION_KEY!r} artifact: {r['artifacts']}"
                images = _deletion_images(page, f"{base}{prefix}/artifacts/artifact/{deletion['id']}")
                shots.append(SCREENSHOTS / f"ui-{ui}-deletion-report.png")
                page.screenshot(path=str(shots[-1]), full_page=True)
                r["images"] = images
                bad = [(src, w) for src, w in images if w <= 0]
                if not images or bad:
                    broken[ui] = images

            # The comparison table (V2) of the V1 run.
            r = runs["v1"]
            table = next(a for a in httpx.post(
                f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [r["run_id"]]}}}
            ).json() if a["key"] == TABLE_KEY)  # fmt: skip
            page.goto(f"{base}/v2/artifacts/artifact/{table['id']}")
            expect(page.get_by_role("columnheader", name="metric", exact=True)).to_be_visible()
            expect(page.get_by_role("columnheader", name="oracle", exact=True)).to_be_visible()
            shots.append(SCREENSHOTS / "ui-comparison.png")
            page.screenshot(path=str(shots[-1]), full_page=True)
        finally:
            browser.close()

    with capsys.disabled():
        for ui, r in runs.items():
            run = r["run"]
            print(
                f"\n{ui}: deployment {r['deployment']} sent parameters={r['sent']}\n    run {run['name']} tags "
                f"{run['tags']} completed in {run['total_run_time']:.0f} s, {r['tasks']} task runs, none reused; "
                f"Submit answered 503 {r['busy']} time(s) first; summary {r['summary']}; "
                f"deletion images (src, naturalWidth) {r.get('images')}"
            )
        print(f"whole test {time.monotonic() - started:.0f} s; screenshots:\n  " + "\n  ".join(map(str, shots)))

    assert not broken, f"images of the deletion report that did not load (src, naturalWidth): {broken}"
    for ui, r in runs.items():
        tags = set(r["run"]["tags"])
        want = {f"preset:{r['preset']}", "request:class"}
        assert want <= tags and any(t.startswith("model:") for t in tags), (
            f"flow run {r['run']['name']} ({ui}) is tagged {sorted(tags)}; expected {sorted(want)} and model:<kind>"
        )
        assert r["run"]["name"].startswith(f"{r['preset']}-"), (
            f"flow run {r['run']['name']} ({ui}): its name does not start with its preset {r['preset']!r}"
        )
