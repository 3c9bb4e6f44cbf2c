"""QMU's one native TensorFlow op, `QmuStateAdjoint` (``state_adjoint.cc``): qsim from a given state.

TFQ's programs start from ``|0...0>``. An amplitude-encoded record therefore carries its whole
state preparation (``2^n - 1`` rotations and ``2^n - 2`` CNOTs) into every TFQ call, and TFQ's
Adjoint differentiator simulates it once and undoes it twice for every record. Profiled on the
default HQNN (`bench/profile_train.py`), that is 87% of a training epoch. The op takes the
encoded states as an input instead, and simulates only the weight ansatz with qsim (the
simulator inside TFQ; its header-only C++ library). It returns the ``<Z_i>``, the gradient with
respect to the weights (TFQ's Adjoint method, with exact derivative matrices) and the
gradient with respect to the states, for ``M`` models at once.

Building: ``python -m qmu_core.qnn.native`` (``make`` runs it once after installing). It needs a
C++17 compiler and qsim's headers, which it takes from the qsimcirq source distribution on the
package index (``pip download``) unless ``QMU_QSIM_INCLUDE`` names a directory holding qsim's
``lib/``. The library lands in ``qmu_core/qnn/native/_build/``, named by a hash of the source,
the TensorFlow version and the compiler flags, so a changed source or TensorFlow rebuilds it.

`load` returns the op, or None with the reason in `unavailable_reason`; the packed backend then
keeps TFQ's own Adjoint route (same values to float32 rounding, slower) and says so once.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import cirq
import numpy as np
import sympy

from qmu_core.errors import ConfigError
from qmu_core.qnn import circuits

__all__ = ["QSIM_VERSION", "ansatz_gate_table", "build", "library_path", "load", "unavailable_reason"]

QSIM_VERSION = "0.22.0"
"""qsimcirq source distribution whose ``lib/`` headers the op is compiled against."""

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "state_adjoint.cc"
BUILD_DIR = HERE / "_build"
OPTIMIZE = ["-O3", "-fPIC", "-shared"]

log = logging.getLogger(__name__)
_REASON: list[str] = []


def _tf_flags() -> tuple[str, list[str], list[str]]:
    """TensorFlow's version and its compile and link flags, asked of a subprocess.

    A subprocess, so that building never imports TensorFlow into the caller (`make` and the
    CLI stay light) and the flags are those of the interpreter that will load the op.
    """
    code = (
        "import json, tensorflow as tf; "
        "print(json.dumps([tf.__version__, tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags()]))"
    )
    from qmu_core import environment

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment.child_env(), check=True
    )

    version, cflags, lflags = json.loads(out.stdout.strip().splitlines()[-1])
    return version, cflags, lflags


def library_path(tf_version: str, cflags: list[str]) -> Path:
    """Where the op built from this source, for this TensorFlow and these flags, lives."""
    digest = hashlib.sha256()
    digest.update(SOURCE.read_bytes())
    digest.update(tf_version.encode())
    digest.update(" ".join(cflags + OPTIMIZE).encode())
    digest.update(QSIM_VERSION.encode())
    return BUILD_DIR / f"qmu_state_adjoint-{digest.hexdigest()[:12]}.so"


def _qsim_include() -> Path:
    """A directory holding qsim's ``lib/*.h``: ``QMU_QSIM_INCLUDE``, else unpacked from the sdist."""
    given = os.environ.get("QMU_QSIM_INCLUDE")
    if given:
        root = Path(given)
        if not (root / "lib" / "simulator_basic.h").is_file():
            raise RuntimeError(
                f"QMU_QSIM_INCLUDE={given} has no lib/simulator_basic.h; point it at qsim's source root."
            )
        return root
    root = BUILD_DIR / f"qsim-{QSIM_VERSION}"
    if (root / "lib" / "simulator_basic.h").is_file():
        return root
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               "--no-build-isolation", "-d", tmp, f"qsimcirq=={QSIM_VERSION}"]  # fmt: skip
        got = subprocess.run(cmd, capture_output=True, text=True)
        archives = list(Path(tmp).glob("qsimcirq-*.tar.gz"))
        if not archives:
            raise RuntimeError(
                f"Could not fetch qsim's headers (qsimcirq=={QSIM_VERSION} source distribution) from the "
                f"package index: {got.stderr.strip()[-500:]}. Set QMU_QSIM_INCLUDE to a qsim checkout instead."
            )
        staging = BUILD_DIR / f".qsim-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "lib").mkdir(parents=True)
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) == 3 and parts[1] == "lib" and parts[2].endswith(".h") and member.isfile():
                    src = tar.extractfile(member)
                    assert src is not None
                    (staging / "lib" / parts[2]).write_bytes(src.read())
        if not (staging / "lib" / "simulator_basic.h").is_file():
            raise RuntimeError(f"{archives[0].name} holds no lib/simulator_basic.h; qsim's layout changed.")
        try:
            staging.replace(root)
        except OSError:  # another process unpacked them first
            shutil.rmtree(staging, ignore_errors=True)
    return root


def build(
    *, force: bool = False, quiet: bool = False, tf_flags: tuple[str, list[str], list[str]] | None = None
) -> Path:
    """Compile the op if this source, TensorFlow and flags have no library yet; return its path.

    Args:
        force: Compile even if the library exists.
        quiet: No "building ..." line on stderr.
        tf_flags: TensorFlow's version, compile and link flags when the caller has TensorFlow
            loaded; else they are asked of a subprocess (`_tf_flags`).

    Raises:
        RuntimeError: No compiler, no qsim headers, or a failed compile (its output included).
    """
    version, cflags, lflags = tf_flags or _tf_flags()
    target = library_path(version, cflags)
    if target.is_file() and not force:
        return target
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if not cxx:
        raise RuntimeError("No C++ compiler (g++, c++ or clang++) on PATH; install one (Debian: apt install g++).")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    include = _qsim_include()
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cxx, *OPTIMIZE, *cflags, f"-I{include}", str(SOURCE), "-o", str(partial), *lflags]
    if not quiet:
        print(f"building {target.name} (qsim {QSIM_VERSION}, TensorFlow {version}) ...", file=sys.stderr)
    got = subprocess.run(cmd, capture_output=True, text=True)
    if got.returncode != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"Compiling {SOURCE.name} failed ({' '.join(cmd)}):\n{got.stderr[-4000:]}")
    partial.replace(target)
    return target


def ansatz_gate_table(n_qubits: int, layers: int) -> np.ndarray:
    """The weight ansatz as rows ``(kind, qubit a, qubit b, parameter)`` for `native` (its op's docs).

    Read off the Cirq circuit `circuits.ansatz` builds, so the op simulates exactly that circuit.

    Raises:
        ConfigError: For a gate the op does not implement.
    """
    qs = circuits.qubits(n_qubits)
    index = {str(s): k for k, s in enumerate(circuits.weight_symbols(n_qubits, layers))}
    pi = sympy.pi

    def weight(expr: object, what: str) -> int:
        name = str(sympy.simplify(sympy.sympify(expr) * pi))
        if name not in index:
            raise ConfigError(f"ansatz_gate_table: {what} is {expr}, not a weight symbol over pi.")
        return index[name]

    rows: list[list[int]] = []
    for op in circuits.ansatz(qs, layers).all_operations():
        gate, q = op.gate, [qs.index(x) for x in op.qubits]
        if isinstance(gate, cirq.PhasedXPowGate):
            p = weight(gate.phase_exponent, "a phase exponent")
            if weight(gate.exponent, "an exponent") != p + 1:
                raise ConfigError(f"ansatz_gate_table: {op} must read two consecutive weights.")
            rows.append([0, q[0], 0, p])
        elif isinstance(gate, cirq.ZPowGate) and gate.global_shift == 0:
            rows.append([1, q[0], 0, weight(gate.exponent, "an exponent")])
        elif gate == cirq.CNOT:
            rows.append([2, q[0], q[1], -1])
        else:
            raise ConfigError(f"ansatz_gate_table: the native op has no {op!r}.")
    return np.asarray(rows, dtype=np.int32)


def unavailable_reason() -> str | None:
    """Why `load` returned None (None if it did not, or was not called)."""
    return _REASON[0] if _REASON else None


@functools.cache
def load() -> Any | None:
    """The ``qmu_state_adjoint`` op function, building it first if needed; None if it cannot be had.

    ``QMU_NATIVE=0`` turns the op off (TFQ's Adjoint route is used everywhere).
    """
    if os.environ.get("QMU_NATIVE", "1") == "0":
        _REASON.append("QMU_NATIVE=0")
        return None
    from qmu_core._tf import tf

    try:
        flags = (tf.__version__, tf.sysconfig.get_compile_flags(), tf.sysconfig.get_link_flags())
        path = library_path(flags[0], flags[1])
        if not path.is_file():
            path = build(quiet=True, tf_flags=flags)
        return tf.load_op_library(str(path)).qmu_state_adjoint
    except Exception as exc:  # noqa: BLE001 - any failure means "use TFQ's route", with the reason kept
        _REASON.append(f"{type(exc).__name__}: {exc}")
        log.warning(
            "QMU's native state-adjoint op is unavailable (%s); amplitude-encoded training uses TFQ's "
            "Adjoint route (same values, slower). Build it with `python -m qmu_core.qnn.native`.",
            _REASON[0].splitlines()[0],
        )
        return None
