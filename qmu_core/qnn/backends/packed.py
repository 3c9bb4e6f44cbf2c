"""Packed TFQ (`tfq_packed`): many records per TFQ program.

TFQ's cost for small circuits is per record and per gate (parsing the program, building the
gates), not the simulation. This module packs ``R = 2^NA`` records into one program with an
``NA``-qubit ancilla "record register":

* ``H`` on every ancilla, then every data gate of the plain model circuit, ``Ry(s)`` with an
  input symbol ``s``, is replaced by ``R`` copies ``Ry(s_r)`` controlled on the register value
  ``r`` (symbols ``p{r}_{s}``). Gates without input symbols (the weight ansatz, the CNOTs of the
  amplitude state preparation) are kept once, uncontrolled. The program therefore prepares
  ``|Phi> = R^-1/2 sum_r (C(x_r)|0>) |r>``, where ``C(x)`` is the plain circuit; this holds for
  angle encoding, data re-uploading and amplitude encoding alike.
* Forward: TFQ's state op (``tfq.get_state_op``); with the ancillas sorted after the system
  qubits the amplitudes reshape to ``[2^n, R]``, so ``<Z_i>_r = R sum_s |a_{s,r}|^2 z_i(s)``.
  For encodings whose circuit is "state, then weight ansatz" (angle without re-uploading,
  amplitude), the forward can instead use TFQ's unitary op once on the weight ansatz and a
  batched matmul with the encoded states (product states / normalized amplitude vectors),
  which is exact and cheaper when ``2^n`` is small against the batch.
* Backward: ``sum_{r,i} g_ri <Z_i>_r = sum_{S,i} d_{S,i} <Phi| Z_i Z_S(anc) |Phi>`` with
  ``d = H_R g`` (``H_R[S, r] = (-1)^popcount(r & S)``, a Walsh-Hadamard transform), so ONE call
  of TFQ's Adjoint differentiator (``differentiate_analytic``, the ``tfq_adj_grad`` op) with the
  ``R * n`` fixed observables ``Z_i Z_S`` returns the gradient of the loss with respect to every
  symbol of the program: the weights (summed over programs) and every record's data symbols.

Every op call gets at least two programs (an empty ``cirq.Circuit`` pads, TFQ skips it):
with a single program TFQ takes a much slower multithreaded path. Padded record slots get
zero angles and a zero upstream gradient. The Adjoint call is issued as two independent op
calls over the two halves of the batch (``split_gradient``, on for every encoding): one TFQ
call runs essentially on one core, two calls in a ``tf.function`` graph run in parallel.

Backend rules (`packing_ancillas`, `unitary_forward`), applied once when a
`PackedTFQBackend` is built (`qmu_core.qnn.backends.make_backend` falls back to the plain backend
when `packing_ancillas` is 0):

* packing applies to every encoding (angle, re-uploading, amplitude; basic QNN and HQNN) for
  ``n_qubits <= MAX_PACKED_SYSTEM_QUBITS`` (10), with the encoding's ``ancillas``
  (`qmu_core.qnn.encoding`). Angle encoding uses ``NA = 4`` ancillas
  (``R = 16`` records per program, at most 14 simulated qubits). Amplitude encoding uses
  ``NA = 2`` (``R = 4``): each record still needs its ``2^n - 1`` data rotations (now
  controlled ones acting on an ``R`` times larger state), so only the CNOTs and the ansatz are
  shared; ``R = 4`` is as fast as ``R = 16`` and serializes 2x faster. For 11 and 12 qubits the
  model falls back to the plain per-record Expectation layer (the packed state would have
  ``2^15``-``2^16`` amplitudes per program and the unitary route would not pay off);
* the unitary route needs a circuit of the form "encoded state, then weight ansatz", so never
  with re-uploading; it is used for inference (`PackedCircuit.predict`) when
  ``n_qubits <= 10`` and for the training forward of an encoding with ``unitary_training``
  (amplitude) when ``n_qubits <= 8``
  (then one ``2^n x 2^n`` unitary is cheaper than simulating the packed state preparation);
  everything else uses the packed state op. Gradients always come from the Adjoint call.
* Serialized programs are cached per ``(n_qubits, layers, encoding, reupload, NA)``; TFQ's
  Python serializer needs ~1-2 s for an 8-qubit amplitude program.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cirq
import sympy

from qmu_core._tf import tf, tfq
from qmu_core.config import ModelConfig
from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits, native
from qmu_core.qnn.backends.base import ExpectationBackend
from qmu_core.qnn.backends.packed_many import ManyModels
from qmu_core.qnn.encoding import Encoding

__all__ = [
    "MAX_PACKED_SYSTEM_QUBITS",
    "PackedCircuit",
    "PackedTFQBackend",
    "packed_circuit",
    "packing_ancillas",
    "unitary_forward",
]

MAX_PACKED_SYSTEM_QUBITS = 10
"""Largest ``n_qubits`` that is packed; larger models use the plain Expectation layer."""

MAX_ANCILLAS = 4
"""Most ancilla qubits of a record register: ``R = 2^4 = 16`` records per program."""

UNITARY_INFERENCE_MAX_QUBITS = 10
"""Largest ``n_qubits`` whose inference goes through one ``2^n x 2^n`` unitary."""

UNITARY_TRAINING_MAX_QUBITS = 8
"""Largest ``n_qubits`` whose amplitude-encoding training forward uses the unitary."""


def packing_ancillas(n_qubits: int, encoding: Encoding) -> int:
    """Ancillas of the record register for a model; 0 means "do not pack".

    Args:
        n_qubits: System qubits n of the model.
        encoding: The model's encoding.

    Returns:
        0 if ``n_qubits > MAX_PACKED_SYSTEM_QUBITS``, else ``encoding.ancillas``.
    """
    if n_qubits > MAX_PACKED_SYSTEM_QUBITS:
        return 0
    return encoding.ancillas


def unitary_forward(n_qubits: int, encoding: Encoding, reupload: bool, *, training: bool) -> bool:
    """Whether the forward pass may use the weight-ansatz unitary (exact, see module doc).

    Args:
        n_qubits: System qubits n.
        encoding: The model's encoding.
        reupload: Data re-uploading (then the unitary route is not applicable).
        training: Forward inside a differentiable call (True) or plain inference (False).

    Returns:
        True if the unitary route is used.
    """
    if reupload:
        return False
    if not training:
        return n_qubits <= UNITARY_INFERENCE_MAX_QUBITS
    return encoding.unitary_training and n_qubits <= UNITARY_TRAINING_MAX_QUBITS


def packed_circuit(
    n_qubits: int, layers: int, encoding: str, reupload: bool, n_ancillas: int
) -> tuple[cirq.Circuit, list[list[sympy.Symbol]]]:
    """The packed Cirq circuit (see module doc) and its data symbols ``[record][input]``.

    Args:
        n_qubits: System qubits n (``LineQubit(0..n-1)``); ancillas are ``LineQubit(n..)``.
        layers: Ansatz layers.
        encoding: A `qmu_core.qnn.encoding` name.
        reupload: Angle encoding with data re-uploading.
        n_ancillas: Ancillas NA; ``2^NA`` records per program.

    Returns:
        ``(circuit, symbols)``; record ``r``'s copy of input symbol ``s`` is ``p{r}_{s}``.
    """
    circuit, input_symbols = circuits.build_circuit(n_qubits, layers, encoding=encoding, reupload=reupload)
    na, r_count = n_ancillas, 2**n_ancillas
    anc = cirq.LineQubit.range(n_qubits, n_qubits + na)  # sorted after the system: sys * R + r
    inputs = {str(s): k for k, s in enumerate(input_symbols)}
    packed_syms = [[sympy.Symbol(f"p{r}_{s}") for s in input_symbols] for r in range(r_count)]
    bits = [[(r >> (na - 1 - k)) & 1 for k in range(na)] for r in range(r_count)]
    ops: list[cirq.Operation] = list(cirq.H.on_each(*anc))
    for op in circuit.all_operations():
        names = cirq.parameter_names(op)
        data = names & inputs.keys()
        if not data:
            ops.append(op)
            continue
        if not isinstance(op.gate, cirq.Ry) or len(names) != 1:
            raise ConfigError(f"Cannot pack data gate {op!r}: only Ry(input symbol) is supported.")
        k = inputs[next(iter(data))]
        (q,) = op.qubits
        ops.extend(cirq.ry(packed_syms[r][k]).on(q).controlled_by(*anc, control_values=bits[r]) for r in range(r_count))
    return cirq.Circuit(ops), packed_syms


@functools.lru_cache(maxsize=16)
def _program_tensors(
    n_qubits: int, layers: int, encoding: str, reupload: bool, n_ancillas: int
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, int]:
    """Serialized programs, symbol names and observables; cached (TFQ serializes slowly)."""
    n, na = n_qubits, n_ancillas
    qs = circuits.qubits(n)
    anc = cirq.LineQubit.range(n, n + na)
    packed, packed_syms = packed_circuit(n, layers, encoding, reupload, na)
    weight_symbols = circuits.weight_symbols(n, layers)
    packed_t, empty_t, weights_t = tfq.convert_to_tensor([packed, cirq.Circuit(), circuits.ansatz(qs, layers)])
    names = tf.constant([str(s) for row in packed_syms for s in row] + [str(s) for s in weight_symbols])
    observables = [
        cirq.PauliSum.from_pauli_strings(
            [cirq.Z(qs[i]) * cirq.PauliString({anc[k]: cirq.Z for k in range(na) if (s >> (na - 1 - k)) & 1})]
        )
        for s in range(2**na)
        for i in range(n)
    ]
    return (
        packed_t[None],
        empty_t[None],
        tf.stack([weights_t, empty_t]),
        names,
        tf.constant([str(s) for s in weight_symbols]),
        tfq.convert_to_tensor([observables]),
        len(packed_syms[0]),
    )


class PackedCircuit(ManyModels):
    """TFQ-native evaluation of one model circuit with ``2^NA`` records per program.

    The circuit is `qmu_core.circuits.build_circuit` (symbol-value order: its input symbols,
    then `qmu_core.circuits.weight_symbols`), packed by `packed_circuit`.

    Args:
        n_qubits: System qubits n (``LineQubit(0..n-1)``).
        layers: Ansatz layers.
        encoding: The model's encoding.
        reupload: Angle encoding with data re-uploading.
        n_ancillas: Ancillas NA of the record register (``R = 2^NA`` records per program).
        split_gradient: Run the Adjoint call as two independent op calls (two cores).
    """

    def __init__(
        self,
        *,
        n_qubits: int,
        layers: int,
        encoding: Encoding,
        reupload: bool,
        n_ancillas: int = MAX_ANCILLAS,
        split_gradient: bool = False,
    ) -> None:
        if n_ancillas < 1:
            raise ConfigError(f"PackedCircuit needs at least one ancilla, got n_ancillas={n_ancillas}.")
        self.n_qubits = n = n_qubits
        self.n_ancillas = n_ancillas
        self.records = 2**n_ancillas
        self.encoding = encoding
        self.reupload = reupload
        self.split_gradient = split_gradient
        # The forward routes, decided here once (module doc, "Backend rules").
        self.unitary_training = unitary_forward(n, encoding, reupload, training=True)
        self.unitary_inference = unitary_forward(n, encoding, reupload, training=False)
        with tf.init_scope():  # eager constants, also when first built inside a tf.function
            (
                self._packed,
                self._empty,
                self._weights_program,
                self._names,
                self._weight_names,
                self._observables,
                self.n_inputs,
            ) = _program_tensors(n_qubits, layers, encoding.name, reupload, n_ancillas)
            r_count = self.records
            self._walsh = tf.constant(
                [[(-1.0) ** bin(r & s).count("1") for r in range(r_count)] for s in range(r_count)],
                tf.float32,
            )
            self._zsign = tf.constant(circuits.z_signs(n))
        # The unitary training route differentiates with QMU's native op when it can be loaded
        # (`qmu_core.qnn.native`): from the encoded states, without their state preparation.
        self.native = native.load() if self.unitary_training else None
        if self.native is not None:
            with tf.init_scope():
                self._gates = tf.constant(native.ansatz_gate_table(n, layers))
        self._adjoint = tfq.differentiators.Adjoint()
        self._state_op = tfq.get_state_op()
        self._unitary_op = tfq.get_unitary_op()

    # ------------------------------------------------------------------ building blocks

    def _layout(self, values: tf.Tensor, theta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Programs, symbol values, real-program count P and padded count PP for a batch."""
        r_count = self.records
        batch = tf.shape(values)[0]
        n_prog = (batch + r_count - 1) // r_count
        n_pad = tf.maximum(n_prog, 2)
        programs = tf.concat([tf.tile(self._packed, [n_prog]), tf.tile(self._empty, [n_pad - n_prog])], axis=0)
        data = tf.pad(values, [[0, n_pad * r_count - batch], [0, 0]])
        data = tf.reshape(data, [n_pad, r_count * self.n_inputs])
        symbol_values = tf.concat([data, tf.tile(theta[None, :], [n_pad, 1])], axis=1)
        return programs, symbol_values, n_prog, n_pad

    def _state_expectations(self, values: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """``<Z_i>`` of every record from the packed programs' states (TFQ state op)."""
        programs, symbol_values, n_prog, _ = self._layout(values, theta)
        states = self._state_op(programs, self._names, symbol_values)[:n_prog].to_tensor()
        states = tf.reshape(states, [n_prog, 2**self.n_qubits, self.records])
        probs = tf.math.real(states) ** 2 + tf.math.imag(states) ** 2
        ev = float(self.records) * tf.einsum("psr,si->pri", probs, self._zsign)
        return tf.reshape(ev, [-1, self.n_qubits])[: tf.shape(values)[0]]

    def weight_unitary(self, theta: tf.Tensor) -> tf.Tensor:
        """The weight ansatz's ``2^n x 2^n`` unitary from TFQ's unitary op (complex64)."""
        u = self._unitary_op(self._weights_program, self._weight_names, tf.stack([theta, theta]))
        return u[0].to_tensor()

    def _unitary_expectations(self, states: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """``<Z_i>`` of ``U(theta)|psi>`` for real encoded states ``(B, 2^n)``."""
        u = self.weight_unitary(theta)
        phi = tf.matmul(tf.cast(states, tf.complex64), u, transpose_b=True)
        probs = tf.math.real(phi) ** 2 + tf.math.imag(phi) ** 2
        return tf.matmul(probs, self._zsign)

    def _adjoint_gradients(
        self, values: tf.Tensor, theta: tf.Tensor, upstream: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Gradients of ``sum(upstream * <Z>)`` w.r.t. data values and weights: one Adjoint call."""
        r_count, n = self.records, self.n_qubits
        programs, symbol_values, _, n_pad = self._layout(values, theta)
        batch = tf.shape(values)[0]
        g = tf.reshape(tf.pad(upstream, [[0, n_pad * r_count - batch], [0, 0]]), [n_pad, r_count, n])
        d = tf.reshape(tf.einsum("sr,pri->psi", self._walsh, g), [n_pad, r_count * n])
        grads = self._adjoint.differentiate_analytic(
            programs,
            self._names,
            symbol_values,
            tf.tile(self._observables, [n_pad, 1]),
            None,
            d,
        )
        n_data = r_count * self.n_inputs
        d_values = tf.reshape(grads[:, :n_data], [n_pad * r_count, self.n_inputs])[:batch]
        return d_values, tf.reduce_sum(grads[:, n_data:], axis=0)

    def _split_gradients(self, values: tf.Tensor, theta: tf.Tensor, upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """`_adjoint_gradients` as two independent op calls over halves of the batch.

        TFQ runs one op call essentially on one core, so two calls that TensorFlow can run
        in parallel (inter-op) use both cores. Halves are cut at program boundaries.
        """
        batch = tf.shape(values)[0]
        n_prog = (batch + self.records - 1) // self.records
        cut = tf.minimum(((n_prog + 1) // 2) * self.records, batch)
        d_a, w_a = self._adjoint_gradients(values[:cut], theta, upstream[:cut])
        d_b, w_b = self._adjoint_gradients(values[cut:], theta, upstream[cut:])
        return tf.concat([d_a, d_b], axis=0), w_a + w_b

    # ------------------------------------------------------------------ public API

    def expectations(self, values: tf.Tensor | None, theta: tf.Tensor, states: tf.Tensor | None = None) -> tf.Tensor:
        """Differentiable ``<Z_i>`` for a batch, shape ``(B, n)``.

        Args:
            values: ``(B, n_inputs)`` data symbol values (angles or state-preparation angles).
            theta: ``(n_weights,)`` weight symbol values.
            states: Amplitude encoding with the unitary training route: the encoded states
                ``(B, 2^n)`` that `values` prepare (`Encoding.states_tf`). With the native op
                (`native`), gradients reach `states` and `theta` (and `values` may be None);
                without it, `values` and `theta` (through TFQ's Adjoint differentiator).

        Returns:
            ``<Z_i>`` of every record.
        """
        theta = tf.convert_to_tensor(theta, tf.float32)
        if self.native is not None:
            if states is None:
                raise ConfigError("PackedCircuit.expectations: the unitary route needs the encoded `states`.")
            return self._native_expectations(tf.convert_to_tensor(states, tf.float32), theta)
        values = tf.convert_to_tensor(values, tf.float32)
        # an encoding with `unitary_training` (see `unitary_forward`) runs the unitary on its states
        forward = self._tfq_forward(states, self._unitary_expectations, self._state_expectations, "expectations")

        @tf.custom_gradient
        def packed_expectations(v: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, Callable]:
            ev = forward(v, w)

            def grad(dy: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                dy = tf.cast(dy, tf.float32)
                if self.split_gradient:
                    return self._split_gradients(v, w, dy)
                return self._adjoint_gradients(v, w, dy)

            return ev, grad

        return packed_expectations(values, theta)

    def _native_expectations(self, states: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """``<Z_i>`` by the unitary route; gradients for `states` and `theta` from the native op."""
        return self._native_route(self._unitary_expectations, states, theta, model_axis=False)

    def predict(self, values: tf.Tensor | None, theta: tf.Tensor, states: tf.Tensor | None = None) -> tf.Tensor:
        """``<Z_i>`` without gradients.

        The weight-ansatz unitary on `states` when `unitary_inference` holds, else the
        packed state op on `values`.

        Args:
            values: ``(B, n_inputs)`` data symbol values (packed state route).
            theta: ``(n_weights,)`` weight values.
            states: The encoded states (unitary route): `Encoding.states_tf` of the features.
        """
        theta = tf.convert_to_tensor(theta, tf.float32)
        if self.unitary_inference:
            if states is None:
                raise ConfigError("PackedCircuit.predict: the unitary route needs the encoded `states`.")
            return self._unitary_expectations(tf.convert_to_tensor(states, tf.float32), theta)
        if values is None:
            raise ConfigError("PackedCircuit.predict: the packed state route needs the symbol `values`.")
        return self._state_expectations(tf.convert_to_tensor(values, tf.float32), theta)


class PackedTFQBackend(ExpectationBackend):
    """`PackedCircuit` behind the backend interface (module doc for the routes).

    Raises:
        ConfigError: If the model is too large to pack (`packing_ancillas` is 0).
    """

    name = "tfq_packed"

    def __init__(self, model: ModelConfig) -> None:
        super().__init__(model)
        n_ancillas = packing_ancillas(model.n_qubits, self.encoding)
        if n_ancillas == 0:
            raise ConfigError(
                f"The packed backend handles up to {MAX_PACKED_SYSTEM_QUBITS} qubits, the model has "
                f"{model.n_qubits}; use model.backend='tfq' (make_backend falls back to it by itself)."
            )
        self.packed = PackedCircuit(
            n_qubits=model.n_qubits,
            layers=model.layers,
            encoding=self.encoding,
            reupload=model.reupload,
            n_ancillas=n_ancillas,
            split_gradient=True,
        )

    def expectations(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """Differentiable ⟨Z_i⟩ by the packed state op, or by the unitary route when `unitary_training` holds."""
        # a unitary route reads the encoded states, the packed state op the symbol values
        states = self.encoding.states_tf(features) if self.packed.unitary_training else None
        if self.packed.native is not None:  # differentiates through the states, not the angles
            return self.packed.expectations(None, theta, states)
        return self.packed.expectations(self.symbol_values(features), theta, states)

    def expectations_many(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """Differentiable ⟨Z_i⟩ ``(M, B, n)`` of M models in one TFQ op call (`PackedCircuit.expectations_many`)."""
        features = tf.convert_to_tensor(features, tf.float32)
        n_models, batch = tf.shape(features)[0], tf.shape(features)[1]
        flat = tf.reshape(features, tf.concat([[n_models * batch], tf.shape(features)[2:]], axis=0))
        states = None
        if self.packed.unitary_training:
            states = tf.reshape(self.encoding.states_tf(flat), [n_models, batch, 2**self.n_qubits])
        if self.packed.native is not None:  # differentiates through the states, not the angles
            return self.packed.expectations_many(None, theta, states)
        values = self.symbol_values(flat)
        values = tf.reshape(values, [n_models, batch, self.packed.n_inputs])
        return self.packed.expectations_many(values, theta, states)

    def predict(self, features: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """⟨Z_i⟩ for inference (no gradients), by the unitary route when `unitary_inference` holds."""
        if self.packed.unitary_inference:
            return tf.stop_gradient(self.packed.predict(None, theta, self.encoding.states_tf(features)))
        return tf.stop_gradient(self.packed.predict(self.symbol_values(features), theta, None))
