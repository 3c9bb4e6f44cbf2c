"""The packed backend for M models at once (a leading model axis): `PackedCircuit`'s `ManyModels` part.

Model m's ``B`` records and its own weights go through the same op calls as every other
model's (module doc of `qmu_core.qnn.backends.packed` for the routes): one packed state op or
one unitary op (a unitary per model) forward, and one gradient call backward, the native op's
model axis when it is loaded, else TFQ's Adjoint over all models' programs. Model m's numbers
equal `PackedCircuit.expectations` of its own inputs to float tolerance
(`tests/qmu_core/qnn/test_stacked.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qmu_core._tf import tf
from qmu_core.errors import ConfigError

__all__ = ["ManyModels"]


class ManyModels:
    """The model-axis methods of `qmu_core.qnn.backends.packed.PackedCircuit` (a mixin; it sets these)."""

    n_qubits: int
    n_inputs: int
    records: int
    split_gradient: bool
    unitary_training: bool
    native: Any
    _gates: Any
    _packed: Any
    _empty: Any
    _names: Any
    _observables: Any
    _walsh: Any
    _zsign: Any
    _weights_program: Any
    _weight_names: Any
    _adjoint: Any
    _state_op: Any
    _unitary_op: Any

    def _many_layout(self, values: tf.Tensor, theta: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Symbol values of M models' programs and the programs per model.

        Model m's ``B`` records fill programs ``m * P .. (m + 1) * P - 1`` (``P = ceil(B / R)``,
        the last one zero-padded as in `_layout`); every program carries its model's weights.

        Returns:
            ``(symbol_values (M * P, R * n_inputs + n_weights), P)``.
        """
        r_count = self.records
        n_models, batch = tf.shape(values)[0], tf.shape(values)[1]
        n_prog = (batch + r_count - 1) // r_count
        data = tf.pad(values, [[0, 0], [0, n_prog * r_count - batch], [0, 0]])
        data = tf.reshape(data, [n_models * n_prog, r_count * self.n_inputs])
        return tf.concat([data, tf.repeat(theta, n_prog, axis=0)], axis=1), n_prog

    def _padded_programs(self, symbol_values: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Packed programs for `symbol_values` rows, padded with empty programs to at least two."""
        n_prog = tf.shape(symbol_values)[0]
        n_pad = tf.maximum(n_prog, 2)
        programs = tf.concat([tf.tile(self._packed, [n_prog]), tf.tile(self._empty, [n_pad - n_prog])], axis=0)
        return programs, tf.pad(symbol_values, [[0, n_pad - n_prog], [0, 0]])

    def _adjoint_rows(self, symbol_values: tf.Tensor, d: tf.Tensor) -> tf.Tensor:
        """One Adjoint op call: the gradient of every symbol of every program row ``(P, n_symbols)``."""
        n_prog = tf.shape(symbol_values)[0]
        programs, padded = self._padded_programs(symbol_values)
        n_pad = tf.shape(programs)[0]
        grads = self._adjoint.differentiate_analytic(
            programs,
            self._names,
            padded,
            tf.tile(self._observables, [n_pad, 1]),
            None,
            tf.pad(d, [[0, n_pad - n_prog], [0, 0]]),
        )
        return grads[:n_prog]

    def _many_gradients(self, values: tf.Tensor, theta: tf.Tensor, upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Gradients of ``sum(upstream * <Z>)`` for M models: data values ``(M, B, n_in)``, weights ``(M, n_w)``.

        All models' programs go through the Adjoint differentiator together (two op calls over
        halves of the programs when `split_gradient`); each model's weight gradient is the sum
        over its own programs.
        """
        r_count, n = self.records, self.n_qubits
        n_models, batch = tf.shape(values)[0], tf.shape(values)[1]
        symbol_values, n_prog = self._many_layout(values, theta)
        g = tf.pad(upstream, [[0, 0], [0, n_prog * r_count - batch], [0, 0]])
        g = tf.reshape(g, [n_models * n_prog, r_count, n])
        d = tf.reshape(tf.einsum("sr,pri->psi", self._walsh, g), [n_models * n_prog, r_count * n])
        if self.split_gradient:
            cut = (n_models * n_prog + 1) // 2
            grads = tf.concat(
                [self._adjoint_rows(symbol_values[:cut], d[:cut]), self._adjoint_rows(symbol_values[cut:], d[cut:])],
                axis=0,
            )
        else:
            grads = self._adjoint_rows(symbol_values, d)
        n_data = r_count * self.n_inputs
        d_values = tf.reshape(grads[:, :n_data], [n_models, n_prog * r_count, self.n_inputs])[:, :batch]
        d_theta = tf.reduce_sum(tf.reshape(grads[:, n_data:], [n_models, n_prog, -1]), axis=1)
        return d_values, d_theta

    def _many_state_expectations(self, values: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """``<Z_i>`` ``(M, B, n)`` of M models from ONE state-op call over all their programs."""
        n_models, batch = tf.shape(values)[0], tf.shape(values)[1]
        symbol_values, n_prog = self._many_layout(values, theta)
        programs, padded = self._padded_programs(symbol_values)
        total = n_models * n_prog
        states = self._state_op(programs, self._names, padded)[:total].to_tensor()
        states = tf.reshape(states, [total, 2**self.n_qubits, self.records])
        probs = tf.math.real(states) ** 2 + tf.math.imag(states) ** 2
        ev = float(self.records) * tf.einsum("psr,si->pri", probs, self._zsign)
        return tf.reshape(ev, [n_models, n_prog * self.records, self.n_qubits])[:, :batch]

    def weight_unitaries(self, theta: tf.Tensor) -> tf.Tensor:
        """The weight ansatz's unitaries of M models ``(M, 2^n, 2^n)`` from ONE unitary-op call."""
        n_models = tf.shape(theta)[0]
        programs = tf.concat([tf.tile(self._weights_program[:1], [n_models]), self._weights_program[1:]], axis=0)
        values = tf.concat([theta, tf.zeros_like(theta[:1])], axis=0)  # the empty program pads to >= 2
        return self._unitary_op(programs, self._weight_names, values)[:n_models].to_tensor()

    def _many_unitary_expectations(self, states: tf.Tensor, theta: tf.Tensor) -> tf.Tensor:
        """``<Z_i>`` ``(M, B, n)`` of ``U_m(theta_m)|psi_mb>`` for real encoded states ``(M, B, 2^n)``."""
        u = self.weight_unitaries(theta)
        phi = tf.matmul(tf.cast(states, tf.complex64), u, transpose_b=True)
        probs = tf.math.real(phi) ** 2 + tf.math.imag(phi) ** 2
        return tf.einsum("mbs,si->mbi", probs, self._zsign)

    def _tfq_forward(
        self,
        states: tf.Tensor | None,
        unitary: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
        state: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
        caller: str,
    ) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        """The forward ``(values, theta) -> <Z>`` of TFQ's route.

        `unitary` on the fixed encoded `states` for an encoding with ``unitary_training``, else
        `state` on the packed programs.

        Raises:
            ConfigError: For the unitary route without `states`.
        """
        if not self.unitary_training:
            return state
        if states is None:
            raise ConfigError(f"PackedCircuit.{caller}: the unitary route needs the encoded `states`.")
        fixed = tf.stop_gradient(tf.convert_to_tensor(states, tf.float32))
        return lambda v, w: unitary(fixed, w)

    def _native_route(
        self,
        forward: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
        states: tf.Tensor,
        theta: tf.Tensor,
        *,
        model_axis: bool,
    ) -> tf.Tensor:
        """`forward` (TFQ's unitary route), with its gradients for `states` and `theta` from the native op.

        With `model_axis`, states ``(M, B, 2^n)`` and weights ``(M, n_w)``; without, one model's
        ``(B, 2^n)`` and ``(n_w,)`` (the op gets a model axis of one).
        """
        op, gates = self.native, self._gates
        assert op is not None, "only called when the native op is loaded"

        @tf.custom_gradient
        def native_expectations(s: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, Callable]:
            ev = forward(s, w)

            def grad(dy: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                dy = tf.cast(dy, tf.float32)
                args = (s, w, gates, dy) if model_axis else (s[None], w[None], gates, dy[None])
                _, d_theta, d_states = op(*args)
                d_theta = tf.reduce_sum(d_theta, axis=1)
                return (d_states, d_theta) if model_axis else (d_states[0], d_theta[0])

            return ev, grad

        return native_expectations(states, theta)

    def expectations_many(
        self, values: tf.Tensor | None, theta: tf.Tensor, states: tf.Tensor | None = None
    ) -> tf.Tensor:
        """Differentiable ``<Z_i>`` of M models (same circuit, own weights), shape ``(M, B, n)``.

        All M models' circuits go through ONE TFQ op call forward (the packed state op, or the
        unitary op with one unitary per model) and one gradient call backward: the native op
        when loaded (gradients reach `states`; `values` may be None), else TFQ's Adjoint (two
        calls with `split_gradient`); model m's weight gradient sums over its own records only. Model m's
        numbers equal `expectations` of ``values[m]``, ``theta[m]`` to float tolerance.

        Args:
            values: ``(M, B, n_inputs)`` data symbol values.
            theta: ``(M, n_weights)`` weight values, one row per model.
            states: ``(M, B, 2^n)`` encoded states; needed by the unitary training route.

        Returns:
            ``<Z_i>`` ``(M, B, n)``.

        Raises:
            ConfigError: If the unitary route is used without `states`.
        """
        theta = tf.convert_to_tensor(theta, tf.float32)
        if self.native is not None:
            if states is None:
                raise ConfigError("PackedCircuit.expectations_many: the unitary route needs the encoded `states`.")
            states = tf.convert_to_tensor(states, tf.float32)
            return self._native_route(self._many_unitary_expectations, states, theta, model_axis=True)
        values = tf.convert_to_tensor(values, tf.float32)
        forward = self._tfq_forward(
            states, self._many_unitary_expectations, self._many_state_expectations, "expectations_many"
        )

        @tf.custom_gradient
        def packed_expectations_many(v: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, Callable]:
            ev = forward(v, w)

            def grad(dy: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                return self._many_gradients(v, w, tf.cast(dy, tf.float32))

            return ev, grad

        return packed_expectations_many(values, theta)
