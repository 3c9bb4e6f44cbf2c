"""Prepared circuits as table rows of Cirq JSON, written and read once per distinct moment.

* `to_frame`: one row per circuit: ``sample_id``, ``target``, ``circuit_json`` and its size;
* `from_frame`: the `Prepared` circuits of such a table.

A model's prepared circuits share almost every moment: `prepare.prepare_model` compiles the fixed
parts once and each record only adds its input rotations. ``cirq.to_json`` and ``cirq.read_json``
walk every gate of every circuit through Python hooks (measured: 66 ms to write and 15 ms to read
one 8-qubit, 10-layer circuit compiled for ``willow_pink``; 299 records spent 20 s in
``to_json``). Here each distinct moment is converted once:

* writing, a moment's JSON is kept by object identity (shared `cirq.Moment` objects are one
  moment), and a circuit's text is its moments' texts joined. The text equals
  ``cirq.to_json(circuit, indent=None)`` character for character (a test checks it), so any Cirq
  reader reads it;
* reading, the text is parsed by the C JSON parser into plain lists and dicts, and each moment's
  canonical text (``json.dumps`` of its dict) is turned into a `cirq.Moment` once; the circuits
  then share their equal moments as objects, which also lets the emulator recognise them by
  identity instead of hashing them.

Older tables (written by ``cirq.to_json`` with its default indent) read the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import cirq
import numpy as np
import pandas as pd

from qmu_core.errors import ArtifactError, ConfigError
from qmu_core.hardware.prepare import MEASUREMENT_KEY, CircuitStats, Prepared

__all__ = ["circuit_json", "from_frame", "read_circuit", "to_frame"]

_STATS = ("depth_before", "depth_after", "two_qubit_before", "two_qubit_after")


def circuit_json(circuit: cirq.Circuit, memo: dict[int, tuple[cirq.Moment, str]] | None = None) -> str:
    """``cirq.to_json(circuit, indent=None)``, converting each moment once per `memo`.

    `memo` maps ``id(moment)`` to the moment (kept alive, so the id stays its own) and its text;
    pass one dict for all the circuits of a table.
    """
    if type(circuit) is not cirq.Circuit:
        return cirq.to_json(circuit, indent=None)
    memo = {} if memo is None else memo
    parts = []
    for moment in circuit.moments:
        hit = memo.get(id(moment))
        if hit is None:
            hit = (moment, cirq.to_json(moment, indent=None))
            memo[id(moment)] = hit
        parts.append(hit[1])
    return '{"cirq_type": "Circuit", "moments": [' + ", ".join(parts) + "]}"


def read_circuit(text: str, memo: dict[str, cirq.Moment] | None = None) -> cirq.Circuit:
    """The circuit of a `circuit_json` (or ``cirq.to_json``) text, each distinct moment built once per `memo`."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("cirq_type") != "Circuit" or not isinstance(data.get("moments"), list):
        found = cirq.read_json(json_text=text)
        if not isinstance(found, cirq.Circuit):
            raise ArtifactError(f"A stored circuit reads as {type(found).__name__}, not a cirq.Circuit.")
        return found
    memo = {} if memo is None else memo
    moments = []
    for item in data["moments"]:
        key = json.dumps(item)
        moment = memo.get(key)
        if moment is None:
            moment = cirq.read_json(json_text=key)
            if not isinstance(moment, cirq.Moment):
                raise ArtifactError(f"A stored circuit holds a {type(moment).__name__} where a cirq.Moment belongs.")
            memo[key] = moment
        moments.append(moment)
    return cirq.Circuit.from_moments(*moments)


def to_frame(prepared: Prepared, sample_ids: Iterable[int]) -> pd.DataFrame:
    """One row per circuit: ``sample_id``, ``target``, ``circuit_json`` (`circuit_json`) and its stats."""
    ids = np.asarray(list(sample_ids), dtype=np.int64)
    if len(ids) != len(prepared.circuits):
        raise ConfigError(f"to_frame() got {len(ids)} sample ids for {len(prepared.circuits)} circuits.")
    stats = prepared.stats or [CircuitStats(-1, -1, -1, -1)] * len(ids)
    memo: dict[int, tuple[cirq.Moment, str]] = {}
    frame = pd.DataFrame(
        {
            "sample_id": ids,
            "target": [prepared.target or ""] * len(ids),
            "circuit_json": [circuit_json(c, memo) for c in prepared.circuits],
        }
    )
    for key in _STATS:
        frame[key] = np.array([getattr(s, key) for s in stats], dtype=np.int64)
    return frame


def _readout_qubits(circuit: cirq.AbstractCircuit) -> tuple[cirq.Qid, ...]:
    for op in circuit.all_operations():
        if cirq.is_measurement(op) and cirq.measurement_key_name(op) == MEASUREMENT_KEY:
            return tuple(op.qubits)
    raise ArtifactError(f"A stored circuit has no measurement with key {MEASUREMENT_KEY!r}; it was not prepared.")


def from_frame(frame: pd.DataFrame) -> Prepared:
    """The `Prepared` circuits of a `to_frame` table (rows in the table's order)."""
    memo: dict[str, cirq.Moment] = {}
    loaded = [read_circuit(text, memo) for text in frame["circuit_json"]]
    if not loaded:
        raise ArtifactError("The prepared-circuits table is empty.")
    qubits = _readout_qubits(loaded[0])
    if any(_readout_qubits(c) != qubits for c in loaded[1:]):
        raise ArtifactError("The stored circuits measure different qubits; they were not prepared together.")
    targets = {str(t) for t in frame["target"]} if "target" in frame else {""}
    if len(targets) != 1:
        raise ArtifactError(f"The stored circuits were prepared for several targets {sorted(targets)}.")
    stats = []
    if set(_STATS) <= set(frame.columns):
        rows = zip(*(frame[k] for k in _STATS), strict=True)
        stats = [CircuitStats(*(int(v) for v in row)) for row in rows]
    return Prepared(circuits=loaded, qubits=qubits, target=targets.pop() or None, stats=stats)
