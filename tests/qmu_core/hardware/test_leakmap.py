"""The leakage map's pieces: shots drawn as counts, and where (and why) a leak disappears."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from qmu_core.config import NoiseSetting, preset
from qmu_core.errors import ConfigError
from qmu_core.hardware import evaluate
from qmu_core.hardware.leakmap import SIMULATION, where_it_goes


def _distribution(probs: np.ndarray, copies: int) -> pd.DataFrame:
    return pd.DataFrame({"sample_id": np.arange(copies), "prob": [probs] * copies})


def test_drawn_z_has_the_law_of_shots() -> None:
    """⟨Z⟩ from counts: unbiased, variance (1 - z^2) / shots per qubit, and the same draw for the same seed."""
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(8))  # 3 qubits
    exact = evaluate.z_from_distribution(_distribution(probs, 1), 3)[0]
    shots, copies = 50, 4000
    z = evaluate.z_from_draws(_distribution(probs, copies), shots, seed=1, n_qubits=3)
    assert z.shape == (copies, 3)
    expected_var = (1 - exact**2) / shots
    # the mean of 4000 draws within 5 standard errors; the variance within 5 of its standard errors (~2.2 %)
    assert np.all(np.abs(z.mean(axis=0) - exact) < 5 * np.sqrt(expected_var / copies))
    assert np.allclose(z.var(axis=0), expected_var, rtol=5 * np.sqrt(2 / copies))
    again = evaluate.z_from_draws(_distribution(probs, copies), shots, seed=1, n_qubits=3)
    assert np.array_equal(z, again)
    assert not np.array_equal(z, evaluate.z_from_draws(_distribution(probs, copies), shots, seed=2, n_qubits=3))
    # every value is a whole number of shots
    assert np.allclose((1 - z) * shots / 2, np.round((1 - z) * shots / 2))
    with pytest.raises(ConfigError, match="repetitions >= 1"):
        evaluate.z_from_draws(_distribution(probs, 2), 0, seed=1, n_qubits=3)


def _row(setting: str, shots: int | None, leaks: bool, phase: str = "before") -> dict[str, Any]:
    return {"setting": setting, "shots": shots, "phase": phase, "leaks": leaks, "forget_leaks": False}


def test_where_the_leak_goes_names_noise_or_shot_variance() -> None:
    rows = [
        _row(SIMULATION, None, True),
        # leaks at infinite shots and from 1,000 shots on
        *(_row("a", n, n is None or n >= 1000) for n in (10, 100, 1000, 10000, None)),
        # no leak even at infinite shots: the noise took it
        *(_row("b", n, False) for n in (10, 1000, None)),
        # leaks everywhere
        *(_row("c", n, True) for n in (10, 1000, None)),
        # leaks at infinite shots only
        *(_row("d", n, n is None) for n in (10, 1000, None)),
        # leaks at 1,000 and 100,000 shots but not at 10,000: the answer flips near the boundary
        *(_row("e", n, n in (1000, 100000, None)) for n in (10, 100, 1000, 10000, 100000, None)),
    ]
    said = where_it_goes(rows, "before")
    assert said[0] == "a: leaks from 1,000 shots on; at 100 shots or fewer it is lost to shot variance."
    assert said[1].startswith("b: no leak detected at any shot count; lost to noise")
    assert said[2].startswith("c: leaks at every shot count measured (10 and up)")
    assert said[3].startswith("d: leaks at infinite shots only; at 1,000 shots or fewer it is lost to shot variance")
    assert said[4] == (
        "e: leaks at infinite shots and at 1,000 and 100,000 shots, not at 10, 100 and 10,000: near the CI's "
        "boundary the answer flips with the draw of shots."
    )
    # without a leak in simulation there is nothing for noise to take
    quiet = [_row(SIMULATION, None, False), *(_row("b", n, False) for n in (10, None))]
    assert "nothing to lose" in where_it_goes(quiet, "before")[0]


def test_noise_settings_are_labelled_emulators_and_listed_once() -> None:
    settings = preset("device_leak").hardware.noise_map
    assert [s.label for s in settings] == [
        "noiseless",
        "willow_pink x0.5",
        "willow_pink x1",
        "willow_pink x2",
        "weber x1",
    ]
    half = NoiseSetting(scale=0.5).sampler()
    assert (half.kind, half.noise, half.processor, half.noise_scale) == ("emulator", "processor", "willow_pink", 0.5)
    # at scale 1 the sampler is the default emulator (the same stage keys as `qmu hardware`)
    assert NoiseSetting().sampler().model_dump() == preset("device_leak").hardware.sampler.model_dump()
    with pytest.raises(ValueError, match="noiseless.*more than once"):
        preset("tiny", hardware={"noise_map": [{"scale": 0}, {"processor": "weber", "scale": 0}]})


def test_exact_distributions_run_at_most_one_per_core_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flow submits every model's distribution at once; the emulators must not all run (and hold memory) at once."""
    import os
    import threading
    import time

    from qmu_core.hardware import prepare as hp
    from qmu_core.hardware import storage
    from qmu_core.hardware.emulator import DensityMatrixEmulator

    model = preset("tiny").model
    rng = np.random.default_rng(0)
    n = 3 * model.n_qubits * model.layers
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n]], "values": [rng.normal(size=n)]})
    logical = hp.resolved_circuits(weights, rng.uniform(0, np.pi, size=(3, model.n_qubits)), model)
    frame = storage.to_frame(hp.prepare(logical, target=None), np.arange(3))
    expected = evaluate.exact_distribution(frame, None)
    lock, running, most = threading.Lock(), [0], [0]

    class Probed(DensityMatrixEmulator):
        def probabilities(self, circuits: Any) -> np.ndarray:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.05)
            try:
                return super().probabilities(circuits)
            finally:
                with lock:
                    running[0] -= 1

    monkeypatch.setattr(evaluate, "DensityMatrixEmulator", Probed)
    results: list[pd.DataFrame] = []
    threads = [
        threading.Thread(target=lambda: results.append(evaluate.exact_distribution(frame, None))) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 and all(np.array_equal(np.stack(r["prob"]), np.stack(expected["prob"])) for r in results)
    assert 1 <= most[0] <= max(1, min(6, os.cpu_count() or 1))
