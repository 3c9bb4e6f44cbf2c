"""The hardware path on a model plug-in: examples/reupload_plugin's `reupload_ring` (installed by `make`).

Its read-out is ``Z_i`` on every qubit plus the ring correlation ``(1/n) sum_i Z_i Z_{i+1}`` (a
`cirq.PauliSum`), so the head reads n + 1 values. As in test_hardware.py, a real `QNN` (TFQ) with
its initial weights stands in for a trained one: the measured read-out must reproduce the model's
TFQ expectations exactly from the noiseless emulator (on LineQubits and compiled for
willow_pink), and within shot noise from qsim's shots.
"""

from __future__ import annotations

import cirq
import numpy as np
import pandas as pd
import pytest

from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.hardware import evaluate, samplers
from qmu_core.hardware import prepare as hp
from qmu_core.hardware import sampling as hs
from qmu_core.hardware.devices import processor
from qmu_core.qnn.cirq_model import CirqModel, MeasuredReadout, cirq_model
from tests.support import PLUGIN, needs_plugin, random_inputs

pytestmark = needs_plugin

CLASSES = [0, 1, 4]
RECORDS = 6
N = 4


class PluginCase:
    """A plug-in QNN (initial weights as 'trained' ones), its weights table, records and TFQ outputs."""

    def __init__(self) -> None:
        from qmu_core.qnn.models import build_model

        self.model = ModelConfig(kind=PLUGIN, n_qubits=N, layers=2)
        self.qnn = build_model(self.model, n_classes=len(CLASSES), image_side=8, seed=3)
        self.weights = self.qnn.weights_frame("m-plugin")
        self.x = random_inputs(self.model, RECORDS, seed=5)
        self.z = self.qnn.predict_expectations(self.x).numpy().astype(np.float64)
        self.rows = pd.DataFrame(
            {
                "sample_id": np.arange(100, 100 + RECORDS, dtype=np.int64),
                "label": np.array(CLASSES * 2, dtype=np.int64)[:RECORDS],
                "role": ["target_train", "target_train", "target_holdout", "target_holdout", "test", "test"],
                "is_forget": [True, False, False, False, False, True],
                "x": list(self.x),
            }
        )


@pytest.fixture(scope="module")
def case() -> PluginCase:
    return PluginCase()


def test_the_plugin_readout_is_one_z_measurement(case: PluginCase) -> None:
    evaluate.check_model(case.model)  # the hardware path accepts it
    readout = evaluate.readout_of(case.model)
    assert case.z.shape == (RECORDS, N + 1)
    assert readout.signs.shape == (2**N, N + 1) and not readout.plain and readout.basis_change == ()
    # outcome 0b0110: Z = (+1, -1, -1, +1), ring pairs (0,1) (1,2) (2,3) (3,0) -> (-1 + 1 - 1 + 1) / 4
    np.testing.assert_allclose(readout.signs[0b0110], [1, -1, -1, 1, 0.0])


@pytest.mark.parametrize("target", [None, "willow_pink"])
def test_exact_readout_of_the_prepared_circuits_is_tfqs(case: PluginCase, target: str | None) -> None:
    from qmu_core.qnn.training import predict_outputs

    frame = evaluate.prepare_records(case.weights, case.rows, case.model, None if target is None else processor(target))
    assert list(frame["target"].unique()) == [target or ""]
    distribution = evaluate.exact_distribution(frame, None)
    readout = evaluate.readout_of(case.model)
    z = evaluate.z_from_distribution(distribution, N, readout)
    np.testing.assert_allclose(z, case.z, atol=1e-5)
    got = hs.outputs_from_z(z, case.weights, case.rows, classes=CLASSES, loss="cross_entropy", model_id="m-plugin")
    expected = predict_outputs(
        case.qnn, case.rows, model_cfg=case.model, classes=CLASSES, loss="cross_entropy", model_id="m-plugin"
    )
    np.testing.assert_allclose(np.stack(got["prob"]), np.stack(expected["prob"]), atol=1e-5)


def test_qsim_shots_agree_with_tfq_within_shot_noise(case: PluginCase) -> None:
    # 30 comparisons at 4 standard errors (p ~ 6e-5 each); the seed is fixed, so the bits are too
    shots = 20_000
    frame = evaluate.prepare_records(case.weights, case.rows, case.model, None)
    table = evaluate.measure(frame, samplers.qsim_sampler(11, cpu_threads=2), shots, batch=3)
    readout = evaluate.readout_of(case.model)
    z, stderr = readout.from_bits(evaluate.bits_from_frame(table, N))
    probs = np.stack(evaluate.exact_distribution(frame, None)["prob"])
    variance = probs @ readout.signs**2 - (probs @ readout.signs) ** 2
    sigma = np.sqrt(np.clip(variance, 1.0 / shots, None) / shots)
    assert np.all(np.abs(z - case.z) <= 4 * sigma), np.abs(z - case.z) / sigma
    np.testing.assert_allclose(stderr, np.sqrt(variance / shots), rtol=0.05, atol=1e-4)
    # the same draws through the distribution route: counts of the exact distribution, same law
    drawn = evaluate.z_from_draws(evaluate.exact_distribution(frame, None), shots, 3, N, readout)
    assert np.all(np.abs(drawn - case.z) <= 4 * sigma)


def test_measured_circuit_renumbers_qubits_and_changes_the_basis() -> None:
    q = cirq.LineQubit.range(1, 4)  # not from 0: the hardware path renumbers them
    circuit = cirq.Circuit(
        [cirq.ry(0.3).on_each(*q), cirq.rx(0.7)(q[2]), cirq.CZ(q[0], q[1]), cirq.rz(1.1)(q[0]), cirq.CNOT(q[1], q[2])]
    )
    readout = (0.5 * cirq.X(q[0]) * cirq.Y(q[2]) + cirq.Z(q[1]), cirq.Y(q[2]), cirq.X(q[0]) - 0.2 * cirq.PauliString())
    spec = CirqModel(ModelConfig(), circuit, (), (), readout, 0)
    measured = MeasuredReadout.of(spec)
    assert [type(op.gate) for op in measured.basis_change] == [cirq.HPowGate, cirq.ZPowGate, cirq.HPowGate]
    rotated = (circuit + cirq.Circuit(measured.basis_change)).transform_qubits(lambda p: cirq.LineQubit(p.x - 1))
    sim = cirq.Simulator(dtype=np.complex128)
    state = sim.simulate(rotated, qubit_order=cirq.LineQubit.range(3)).final_state_vector
    expected = np.real(sim.simulate_expectation_values(circuit, list(readout), qubit_order=q))
    np.testing.assert_allclose(np.abs(state) ** 2 @ measured.signs, expected, atol=1e-9)


def test_a_readout_needing_two_bases_on_one_qubit_is_refused() -> None:
    q = cirq.LineQubit.range(2)
    spec = CirqModel(ModelConfig(), cirq.Circuit(cirq.CZ(*q)), (), (), (cirq.X(q[0]), cirq.Z(q[0]) * cirq.Z(q[1])), 0)
    with pytest.raises(ConfigError, match=r"measures qubit q\(0\) in both the X and the Z basis"):
        MeasuredReadout.of(spec)


def test_theta_of_the_wrong_size_says_which_circuit(case: PluginCase) -> None:
    from qmu_core.errors import ArtifactError

    weights = pd.DataFrame({"variable": ["theta"], "shape": [[3]], "values": [np.zeros(3)]})
    with pytest.raises(
        ArtifactError, match=f"the circuit of model plug-in '{PLUGIN}' has {len(cirq_model(case.model).weights)}"
    ):
        hp.theta(weights, case.model)
