"""The Prefect UI runs the `smoke` deployment from its Custom run form, end to end.

Everything is real: `prefect server start` (UI included) in a temporary PREFECT_HOME, the
`qmu-process` work pool, `QMU_REPO=<repo> prefect --no-prompt deploy --all` from the repository
root as prefect.yaml's header documents it, a `prefect worker start` subprocess, and Debian's
Chromium driven by Playwright. The browser opens the UI's front page, goes to Deployments -> smoke
-> Run -> Custom run, changes exactly one field (`train.epochs`, one epoch fewer: the run stays
tiny), submits, and after the run completes opens the flow run's Artifacts tab, where the
`qmu-comparison` table must be, then the table itself. Screenshots go to data/screenshots/.

The test also checks what the form sent: the flow run's validated config must be the deployment's
with only that one field changed. (The form sends every field that shows a value; when the schema
gave each field a default, those defaults overrode the deployment's `preset`.)

Artifacts land in the repository's data/artifacts: the pull step's directory is resolved when
deploying, so runs work in the repository, and pointing `run.artifact_root` elsewhere would take a
second form edit. The worker runs with PREFECT_TASKS_REFRESH_CACHE=true so that no stage is reused
from there: the run computes everything."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
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
DEPLOYMENT, FLOW, POOL, TABLE_KEY = "smoke", "qmu-pipeline", "qmu-process", "qmu-comparison"
SERVER_START_TIMEOUT = 120.0  # s; migrations of a fresh database take ~15 s on 2 cores
RUN_TIMEOUT = 360.0  # s; a tiny run takes 1-2 min here
UI_TIMEOUT_MS = 30_000  # per browser action; the machine is busy while a run trains
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace").splitlines() if log.exists() else ["(no log)"]
    return "\n".join(text[-lines:])


class _Processes:
    """Long-running children, each in its own session; `stop_all` ends them and every descendant."""

    def __init__(self) -> None:
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        self.started.append((name, proc, log))
        return proc

    def check_alive(self) -> None:
        for name, proc, log in self.started:
            if proc.poll() is not None:
                pytest.fail(f"the {name} exited early with code {proc.returncode}; its log {log}:\n{_tail(log)}")

    def stop_all(self) -> None:
        """Newest first (the worker before the server): SIGTERM, then SIGKILL to whatever is left.

        The flow-run processes a worker starts may sit in process groups of their own, so every
        descendant is collected before its parent goes (orphans are re-parented out of reach)."""
        import psutil

        for _, proc, _ in reversed(self.started):
            family: list[psutil.Process] = []
            with contextlib.suppress(psutil.Error):
                family = psutil.Process(proc.pid).children(recursive=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            for child in family:
                with contextlib.suppress(psutil.Error):
                    child.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=20)
            _, alive = psutil.wait_procs(family, timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            for child in alive:
                with contextlib.suppress(psutil.Error):
                    child.kill()
            proc.wait(timeout=15)


@pytest.fixture
def processes() -> Iterator[_Processes]:
    procs = _Processes()
    try:
        yield procs
    finally:
        procs.stop_all()


def _env(home: Path, api_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_LOG_RETRYABLE_ERRORS="true",  # SQLite lock contention shows up as 503s: log why
        PREFECT_WORKER_QUERY_SECONDS="3",
        # Recompute every stage (what `qmu run --refresh` sets): the run writes to the repository's
        # data/artifacts, where an earlier run of the same config would otherwise be reused in seconds.
        PREFECT_TASKS_REFRESH_CACHE="true",
        TF_USE_LEGACY_KERAS="1",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    return env


def _cli(argv: list[str], env: dict[str, str], what: str, timeout: float = 180.0) -> None:
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-3000:]
        pytest.fail(f"{what} failed (`{' '.join(argv)}` in {ROOT}, exit {done.returncode}):\n{output}")


def _wait_healthy(api: str, procs: _Processes) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        procs.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"prefect server did not answer {api}/health within {SERVER_START_TIMEOUT:.0f} s")


def _wait_final(api: str, run_id: str, procs: _Processes, worker_log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        procs.check_alive()
        run = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()
        if run["state_type"] in FINAL:
            return run
        time.sleep(2)
    pytest.fail(
        f"flow run {run_id} is still {run.get('state_type')} after {RUN_TIMEOUT:.0f} s (a tiny run takes 1-2 min); "
        f"worker log {worker_log}:\n{_tail(worker_log)}"
    )


def _changed(sent: dict[str, Any], deployed: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted path: (form's value, deployment's value)} where the two configs, validated, differ."""
    from qmu_core.config import QMUConfig

    def flat(tree: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(tree, dict):
            return {prefix.rstrip("."): tree}
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}{key}.").items()}

    a = flat(QMUConfig.model_validate(sent).model_dump(mode="json", exclude={"preset"}))
    b = flat(QMUConfig.model_validate(deployed).model_dump(mode="json", exclude={"preset"}))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def _submit(page: Any, server_log: Path, attempts: int = 3) -> tuple[str, int]:
    """Click Submit until the server takes the run; returns its id and how many 503s came first.

    On a busy machine SQLite can stay locked past the server's timeout; the API then answers 503
    ("retryable"; Prefect's own client retries). The form keeps its values, and a user clicks again."""
    busy = 0
    for _ in range(attempts):
        with page.expect_response(lambda r: r.url.endswith("/create_flow_run") and r.request.method == "POST") as info:
            page.get_by_role("button", name="Submit", exact=True).click()
        response = info.value
        if response.ok:
            return str(response.json()["id"]), busy
        if response.status != 503:
            break
        busy += 1
        page.wait_for_timeout(3000)
    pytest.fail(
        f"the UI's POST {response.url} answered {response.status} {response.text()} "
        f"({busy} times 503 before); server log {server_log}:\n{_tail(server_log)}"
    )


@pytest.mark.browser
@pytest.mark.timeout(900)
def test_custom_run_of_the_smoke_deployment_from_the_ui(
    tmp_path: Path, processes: _Processes, capsys: pytest.CaptureFixture[str]
) -> None:
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM.is_file(), f"Chromium not found at {CHROMIUM}; install Debian's `chromium` package."
    started = time.monotonic()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _env(tmp_path / "prefect-home", api)
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"

    # 1. A real server with its UI.
    processes.start(
        "prefect server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env, server_log,
    )  # fmt: skip
    _wait_healthy(api, processes)

    # 2. The pool and the deployments, as prefect.yaml's header documents them.
    _cli([str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"], env, f"creating work pool {POOL}")
    deploy_env = env | {"QMU_REPO": str(ROOT)}
    _cli([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], deploy_env, "prefect deploy --all")
    found = httpx.post(f"{api}/deployments/filter", json={"deployments": {"name": {"any_": [DEPLOYMENT]}}}).json()
    assert found, f"`prefect deploy --all` registered no deployment named {DEPLOYMENT!r}; check prefect.yaml"
    deployment = found[0]
    flow = httpx.get(f"{api}/flows/{deployment['flow_id']}").json()
    assert flow["name"] == FLOW, f"deployment {DEPLOYMENT!r} runs flow {flow['name']!r}, expected {FLOW!r}"

    # 3. A worker for the pool.
    processes.start("prefect worker", [str(BIN / "prefect"), "worker", "start", "--pool", POOL], env, worker_log)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    run_png, table_png = SCREENSHOTS / "ui-smoke-run.png", SCREENSHOTS / "ui-smoke-comparison.png"
    base = api.removesuffix("/api")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)

            # 4. Front page -> Deployments -> smoke -> Run -> Custom run.
            page.goto(base + "/")
            page.get_by_role("link", name="Deployments", exact=True).first.click()
            page.get_by_role("link", name=DEPLOYMENT, exact=True).first.click()
            expect(page).to_have_url(re.compile(f"/deployments/deployment/{deployment['id']}"))
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_role("menuitem", name="Custom run").click()

            # Exactly one field: train.epochs, one epoch fewer than the deployment trains (tiny: 3 -> 2).
            # The form shows the deployment's value, or nothing when the deployment leaves it to its preset.
            from qmu_core.config import QMUConfig

            deployed = deployment["parameters"].get("config", {})
            deployed_epochs = QMUConfig.model_validate(deployed).train.epochs
            new_epochs = deployed_epochs - 1 if deployed_epochs > 1 else 2
            epochs = page.get_by_label("Epochs (Optional)", exact=True)
            expect(epochs).to_have_count(1)
            shown = epochs.input_value()
            assert shown in ("", str(deployed_epochs)), (
                f"the form shows train.epochs={shown!r}, but deployment {DEPLOYMENT!r} runs {deployed_epochs} "
                f"epochs ({deployed}): the form would mislead whoever edits it"
            )
            epochs.fill(str(new_epochs))
            run_id, busy = _submit(page, server_log)

            # What the form sent must be the deployment's config with that one field changed.
            sent = httpx.get(f"{api}/flow_runs/{run_id}").json()["parameters"]
            diff = _changed(sent.get("config", {}), deployed)
            assert diff == {"train.epochs": (new_epochs, deployed_epochs)}, (
                f"the Custom run form changed only train.epochs ({deployed_epochs} -> {new_epochs}), but the run's "
                f"config differs from deployment {DEPLOYMENT!r}'s {deployed} in {diff} (form value, deployment "
                f"value). The form sent {sent}"
            )

            # 5. Wait for the run; it must complete.
            run = _wait_final(api, run_id, processes, worker_log)
            assert run["state_type"] == "COMPLETED", (
                f"flow run {run['name']} ended {run['state_type']}: {run['state'].get('message')}\n"
                f"worker log {worker_log}:\n{_tail(worker_log)}"
            )

            tasks = httpx.post(f"{api}/task_runs/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
            reused = sorted(t["name"] for t in tasks if t["state_name"] == "Cached")
            assert tasks and not reused, (
                f"flow run {run['name']} reused {len(reused)} of {len(tasks)} stages ({reused}) although the worker "
                "runs with PREFECT_TASKS_REFRESH_CACHE=true: the worker's environment did not reach the flow run"
            )

            # The run's page through the UI: the deployment's Runs tab lists it.
            page.goto(f"{base}/v2/deployments/deployment/{deployment['id']}?tab=Runs")
            page.get_by_role("link", name=run["name"], exact=True).first.click()
            expect(page).to_have_url(re.compile(f"/runs/flow-run/{run_id}"))
            expect(page.get_by_text("Completed", exact=True).first).to_be_visible()
            page.get_by_role("tab", name="Artifacts").click()
            card = page.locator(f"a[href$='/artifacts/key/{TABLE_KEY}']")
            keys = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
            try:
                expect(card).to_be_visible()
            except AssertionError:
                pytest.fail(
                    f"the Artifacts tab of flow run {run['name']} shows no {TABLE_KEY!r} card; the API lists "
                    f"{[(a['key'], a['type']) for a in keys]} for that flow run"
                )
            expect(card.get_by_text(re.compile(r"^table$", re.IGNORECASE))).to_be_visible()
            page.screenshot(path=str(run_png), full_page=True)

            # The table itself: the card opens the key's page, whose latest version is this run's.
            table = next(a for a in keys if a["key"] == TABLE_KEY)
            card.click()
            page.locator(f"a[href$='/artifacts/artifact/{table['id']}']").first.click()
            expect(page.get_by_role("columnheader", name="metric", exact=True)).to_be_visible()
            expect(page.get_by_role("columnheader", name="oracle", exact=True)).to_be_visible()
            page.screenshot(path=str(table_png), full_page=True)
        finally:
            browser.close()

    with capsys.disabled():
        print(f"\nthe form sent parameters={sent}")
        where = "the flow run itself" if table["task_run_id"] is None else f"task run {table['task_run_id']}"
        print(
            f"\nUI smoke run {run['name']} ({run_id}) completed in {run['total_run_time']:.0f} s, "
            f"{len(tasks)} task runs, none reused "
            f"({time.monotonic() - started:.0f} s for the whole test); {TABLE_KEY} created by {where}; "
            f"Submit answered 503 (SQLite busy) {busy} time(s) first"
            f"\nscreenshots: {run_png}\n             {table_png}"
        )
