"""Throughput of the samplers on prepared angle-encoded circuits (8 qubits, L=10), on this machine.

    python bench/sampler_speed.py                              # qsim, google_noisy_qvm, emulator
    python bench/sampler_speed.py --records 1000 --only emulator --only qsim
    python bench/sampler_speed.py --qvm-records 2              # the slow noisy QVM on fewer circuits

Circuits: the model circuit with random weights and 1,000 random records' inputs, prepared with
`qmu_core.hardware.prepare.prepare_model` for the processor whose noise is used (`willow_pink`, CZ
gate set) or for LineQubits (`qsim`). Timed: ``sampling.run_circuits`` (``run_batch`` in chunks of
100) for every sampler, so the emulator's time includes applying the noise model, the exact
distributions and the shots. Preparation is timed separately (``prepare`` line).

Prints one JSON object per line: ``sampler``, ``circuits``, ``repetitions``, ``seconds``,
``circuits_per_s``, ``shots_per_s`` (and ``noise``, ``cpu_threads``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000, help="Circuits for qsim and the emulator.")
    parser.add_argument("--qvm-records", type=int, default=4, help="Circuits for the noisy QVM (0.2 circuits/s).")
    parser.add_argument("--repetitions", type=int, default=1000)
    parser.add_argument("--processor", default="willow_pink")
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--only", action="append", choices=["qsim", "google_noisy_qvm", "emulator"])
    parser.add_argument("--cpu-threads", type=int, default=0, help="0: every core.")
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from qmu_core.config import EmulatorSampler, GoogleNoisyQVMSampler, ModelConfig, QsimSampler
    from qmu_core.hardware import prepare, samplers, sampling

    model = ModelConfig(n_qubits=8, layers=args.layers, encoding="angle")
    rng = np.random.default_rng(0)
    n_theta = 3 * 8 * args.layers
    weights = pd.DataFrame({"variable": ["theta"], "shape": [[n_theta]], "values": [rng.normal(size=n_theta)]})
    x = rng.uniform(0, np.pi, size=(args.records, 8))
    threads = samplers.threads(args.cpu_threads)
    chosen = args.only or ["qsim", "google_noisy_qvm", "emulator"]
    configs = {
        "qsim": QsimSampler(),
        "google_noisy_qvm": GoogleNoisyQVMSampler(processor=args.processor),
        "emulator": EmulatorSampler(noise="processor", processor=args.processor),
    }
    prepared: dict[str | None, list] = {}
    kinds = {name: samplers.resolve(configs[name]) for name in chosen}  # type: ignore[arg-type]
    for name in chosen:
        tgt = kinds[name].target
        if tgt not in prepared:
            start = time.perf_counter()
            prepared[tgt] = prepare.prepare_model(weights, x, model, target=kinds[name].processor).circuits
            elapsed = time.perf_counter() - start
            line = {"prepare": tgt or "LineQubits", "circuits": len(x), "seconds": round(elapsed, 2),
                    "circuits_per_s": round(len(x) / elapsed, 1)}  # fmt: skip
            print(json.dumps(line), flush=True)
    for name in chosen:
        circuits = prepared[kinds[name].target]
        if name == "google_noisy_qvm":
            circuits = circuits[: args.qvm_records]
        sampler = kinds[name].build(seed=1, cpu_threads=threads)
        start = time.perf_counter()
        bits = sampling.run_circuits(circuits, sampler, args.repetitions)
        elapsed = time.perf_counter() - start
        assert bits.shape == (len(circuits), args.repetitions, 8)
        line = {
            "sampler": name,
            "noise": kinds[name].describes,
            "circuits": len(circuits),
            "repetitions": args.repetitions,
            "seconds": round(elapsed, 2),
            "circuits_per_s": round(len(circuits) / elapsed, 3),
            "shots_per_s": round(len(circuits) * args.repetitions / elapsed, 1),
            "cpu_threads": threads,
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    from qmu_core import environment

    environment.apply()
    main()
