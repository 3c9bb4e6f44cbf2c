"""`ReproduceConfig`: the parameter of `qmu reproduce`, and the study configs it expands to.

The paper's study (docs/reproduction.md) is a set of ordinary QMU runs, each a `QMUConfig` built
from a preset (`qmu_core.reproduction.studies`):

* simulation: each model preset (``paper``, ``paper_hqnn``) on MNIST, forget class 4, over
  ``seeds`` training seeds, audited twice: under the sound protocol (``attack.protocol=shadow``)
  and under the paper's own (``protocol=paper``, the attack fitted on the target's members). The
  second run reuses every model of the first; only the attack stages differ;
* device: ``paper_angle`` (the device-sized circuit) re-evaluated through the emulator with each
  processor's calibration noise, under the paper's protocol, and the shot-count study on the
  first processor.

`overrides` (``section.field=value``, as ``qmu run --set``) apply to every study config, so a
smaller study (tests, a laptop) is the same study with smaller sizes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt

from qmu_core.config.form import Section
from qmu_core.config.hardware import Processor

__all__ = ["ReproduceConfig"]


class ReproduceConfig(Section):
    """The paper's study as one flow: which models, how many seeds, which device noise, and where the report goes."""

    artifact_root: str = Field(
        "data/artifacts", min_length=1, description="Artifact root of every run of the study (as `run.artifact_root`)."
    )
    mnist_path: str | None = Field(
        None,
        description=(
            "Directory holding MNIST (`t10k-*-ubyte.gz`); empty: `data/raw/mnist`, then Keras' cache. "
            "Example: `../shared/data/mnist`."
        ),
    )
    seeds: int = Field(3, strict=True, ge=1, le=20, description="Training seeds of every model (`unlearn.seeds`).")
    models: tuple[Literal["paper", "paper_hqnn"], ...] = Field(
        ("paper", "paper_hqnn"), min_length=1, description="The paper's models to study in simulation."
    )
    processors: tuple[Processor, ...] = Field(
        ("willow_pink", "weber"),
        description="Device noise for `paper_angle` (emulated calibration of each); empty: no device part.",
    )
    shots: tuple[StrictInt, ...] = Field(
        (10, 100, 1000, 10000),
        description="Shot counts of the shot-count study (first processor); empty: no shot study.",
    )
    publish_to: str = Field(
        "",
        description=(
            "Also write REPRODUCTION.md, reproduction.json and the figure into this directory (the repository's "
            "`docs/reproduction`, say); empty: the run folder only."
        ),
    )
    overrides: tuple[str, ...] = Field(
        (),
        description=(
            "`section.field=value` assignments applied to every run of the study, e.g. "
            "`attack.n_shadow=16` (a smaller or larger study of the same design)."
        ),
    )
