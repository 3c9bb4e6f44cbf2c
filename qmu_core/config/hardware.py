"""The `hardware` section: the sampler kinds (`SAMPLERS`, one config class each) and the shots.

`hardware.sampler` is a tagged union of the sampler classes below, chosen by `kind`; the
catalogue `SAMPLERS` lists them with their form titles, and the union, `SAMPLER_CLASSES` and
`SAMPLER_KINDS` are built from it.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    StrictInt,
    field_validator,
    model_serializer,
    model_validator,
)

from qmu_core.config.catalogue import Catalogue, Variant
from qmu_core.config.form import Section, form_schema, preset_configs, unsaid

__all__ = [
    "PROCESSORS",
    "SAMPLERS",
    "SAMPLER_CLASSES",
    "SAMPLER_KINDS",
    "EmulatorSampler",
    "GoogleEngineSampler",
    "GoogleNoisyQVMSampler",
    "GoogleVirtualSampler",
    "HardwareConfig",
    "NoiseSetting",
    "Processor",
    "QsimNoisySampler",
    "QsimSampler",
    "SamplerConfig",
    "SamplerSection",
]

PROCESSORS = ("rainbow", "weber", "willow_pink")
"""Google processors QMU knows offline (device spec and median calibration; `qmu_core.hardware.devices`)."""

if TYPE_CHECKING:
    Processor = str
else:
    Processor = Literal[PROCESSORS]


def _sampler_form_schema(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """A sampler variant's form schema.

    The form must send its tag, so `kind` is required and filled in (both UIs leave a bare
    const empty), and the variant is titled from `SAMPLERS`.
    """
    kind = schema["properties"]["kind"]
    schema["required"] = sorted({*schema.get("required", []), "kind"})
    kind["default"] = kind["const"]
    schema["title"] = SAMPLERS[kind["const"]].title if kind["const"] in SAMPLERS else schema.get("title", "")
    form_schema(schema, cls)


class SamplerSection(Section):
    """Base of the sampler kinds: a section whose `kind` tags its variant of `hardware.sampler`."""

    model_config = ConfigDict(json_schema_extra=_sampler_form_schema)


class QsimSampler(SamplerSection):
    """Noiseless shots from qsim's state-vector simulator (seeded, every core)."""

    kind: Literal["qsim"] = Field("qsim", description="Sampler kind (picks this variant).")


class QsimNoisySampler(SamplerSection):
    """qsim with a simple noise model: trajectories, one per shot."""

    kind: Literal["qsim_noisy"] = Field("qsim_noisy", description="Sampler kind (picks this variant).")
    depolarizing: float = Field(
        0.001, strict=True, ge=0, lt=1, description="Depolarizing probability after every gate, on its qubits."
    )
    amplitude_damping: float = Field(
        0.0005, strict=True, ge=0, lt=1, description="Amplitude-damping rate gamma per qubit and moment."
    )
    readout_error: float = Field(0.01, strict=True, ge=0, lt=1, description="Bit-flip probability before read-out.")


class GoogleVirtualSampler(SamplerSection):
    """A processor's noiseless virtual engine: device-validated circuits, qsim underneath."""

    kind: Literal["google_virtual"] = Field("google_virtual", description="Sampler kind (picks this variant).")
    processor: Processor = Field("willow_pink", description="The processor whose device the circuits compile for.")


class GoogleNoisyQVMSampler(SamplerSection):
    """cirq-google's noisy quantum virtual machine: the processor's median-calibration noise, qsim trajectories."""

    kind: Literal["google_noisy_qvm"] = Field("google_noisy_qvm", description="Sampler kind (picks this variant).")
    processor: Processor = Field("willow_pink", description="The processor whose device and noise are used.")


class GoogleEngineSampler(SamplerSection):
    """The real Google Quantum Engine.

    The project id comes from the environment only (`GOOGLE_CLOUD_PROJECT`, or the Prefect
    Secret block `qmu-google-cloud-project`).
    """

    kind: Literal["google_engine"] = Field("google_engine", description="Sampler kind (picks this variant).")
    processor_id: str = Field("willow_pink", min_length=1, description="Engine processor id (as the Engine lists it).")
    run_name: str = Field(
        "", description="Automation run holding the device configuration; empty (with `device_config_name`): default."
    )
    device_config_name: str = Field(
        "", description="Device configuration of that run (qubits, gates); empty: the processor's default."
    )

    @model_validator(mode="after")
    def _run_and_config_together(self) -> GoogleEngineSampler:
        if bool(self.run_name) != bool(self.device_config_name):
            raise ValueError(
                "hardware.sampler: the Engine takes `run_name` and `device_config_name` together; set both "
                f"(got run_name={self.run_name!r}, device_config_name={self.device_config_name!r}) or neither."
            )
        return self


class EmulatorSampler(SamplerSection):
    """Exact noisy output distributions (batched density matrices), then the requested shots.

    Agrees in distribution with the noisy QVM and is orders of magnitude faster: the default for
    noisy studies. `noise` picks whose noise model: a processor's median calibration, the
    `qsim_noisy` rates below, or none.
    """

    kind: Literal["emulator"] = Field("emulator", description="Sampler kind (picks this variant).")
    noise: Literal["processor", "qsim_noisy", "none"] = Field(
        "processor", description="`processor`: the calibration noise of `processor`; `qsim_noisy`: the rates below."
    )
    processor: Processor = Field(
        "willow_pink", description="`noise=processor`: the processor whose device and noise are emulated."
    )
    noise_scale: float = Field(
        1.0,
        ge=0,
        le=10,
        description=(
            "`noise=processor`: every error of the calibration times this factor (Pauli errors per gate, read-out "
            "errors, 1/T1 and 1/Tphi, the CZs' coherent errors); 1: as calibrated, 0: noiseless."
        ),
    )
    depolarizing: float = Field(0.001, strict=True, ge=0, lt=1, description="`noise=qsim_noisy`: as in `qsim_noisy`.")
    amplitude_damping: float = Field(0.0005, strict=True, ge=0, lt=1, description="`noise=qsim_noisy`: as there.")
    readout_error: float = Field(0.01, strict=True, ge=0, lt=1, description="`noise=qsim_noisy`: as in `qsim_noisy`.")

    @model_serializer(mode="wrap")
    def _calibrated_scale_unsaid(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """Leave `noise_scale` out at 1: the stages keyed by this section keep the keys they had before it existed."""
        return unsaid(handler(self), info, ["noise_scale"] if self.noise_scale == 1.0 else [])


SAMPLERS = Catalogue(
    "sampler kind",
    {
        "qsim": Variant(
            "qsim: noiseless shots", implementation="qmu_core.hardware.samplers:qsim_kind", config=QsimSampler
        ),
        "qsim_noisy": Variant(
            "qsim_noisy: simple noise model",
            implementation="qmu_core.hardware.samplers:qsim_noisy_kind",
            config=QsimNoisySampler,
        ),
        "google_virtual": Variant(
            "google_virtual: a processor's noiseless virtual engine",
            implementation="qmu_core.hardware.samplers:virtual_kind",
            config=GoogleVirtualSampler,
        ),
        "google_noisy_qvm": Variant(
            "google_noisy_qvm: a processor's noisy virtual machine",
            implementation="qmu_core.hardware.samplers:noisy_qvm_kind",
            config=GoogleNoisyQVMSampler,
        ),
        "google_engine": Variant(
            "google_engine: the real Google Quantum Engine",
            implementation="qmu_core.hardware.samplers:engine_kind",
            config=GoogleEngineSampler,
        ),
        "emulator": Variant(
            "emulator: exact noisy distributions",
            implementation="qmu_core.hardware.samplers:emulator_kind",
            config=EmulatorSampler,
        ),
    },
)
"""Every sampler kind of `hardware.sampler`: the form's title, the config class and the builder
(`qmu_core.hardware.samplers`) of each."""

SAMPLER_CLASSES: dict[str, type[BaseModel]] = SAMPLERS.configs()
SAMPLER_KINDS = SAMPLERS.names

if TYPE_CHECKING:
    SamplerConfig = (
        QsimSampler
        | QsimNoisySampler
        | GoogleVirtualSampler
        | GoogleNoisyQVMSampler
        | GoogleEngineSampler
        | EmulatorSampler
    )
else:
    SamplerConfig = Annotated[functools.reduce(operator.or_, SAMPLER_CLASSES.values()), Field(discriminator="kind")]
"""Which `cirq.Sampler` measures the circuits: one of `SAMPLERS`, chosen by `kind` (the type
checker sees the union written out)."""


class NoiseSetting(Section):
    """One row of the leakage map (`qmu leak-map`): a processor's calibration noise times a factor.

    Measured with the `emulator` (exact noisy distributions, then the shots); scale 0 is the same
    compiled circuits without noise.
    """

    processor: Processor = Field("willow_pink", description="The processor whose device and calibration are used.")
    scale: float = Field(
        1.0, ge=0, le=10, description="Every error of the calibration times this; 0: noiseless, 1: as calibrated."
    )

    @property
    def label(self) -> str:
        """``noiseless`` at scale 0, else for example ``willow_pink x0.5``."""
        return "noiseless" if self.scale == 0 else f"{self.processor} x{self.scale:g}"

    def sampler(self) -> EmulatorSampler:
        """The emulator that measures this setting."""
        return EmulatorSampler(processor=self.processor, noise_scale=self.scale)


NOISE_MAP = (
    NoiseSetting(scale=0.0),
    NoiseSetting(scale=0.5),
    NoiseSetting(scale=1.0),
    NoiseSetting(scale=2.0),
    NoiseSetting(processor="weber", scale=1.0),
)
"""The leakage map's default rows: noiseless, `willow_pink`'s calibration x0.5, x1 and x2, and `weber`'s."""


def _any_of(schema: dict[str, Any]) -> None:
    """Render the sampler union as `anyOf` (Prefect's form picks a variant from it), the presets' kind first.

    Both UIs show the first variant selected and, as its `kind` has a default there, send
    ``{"kind": ...}`` for it untouched (which the preset merge leaves as the preset's).
    """
    if "oneOf" in schema:
        schema["anyOf"] = schema.pop("oneOf")
    schema.pop("discriminator", None)
    kinds = {config.hardware.sampler.kind for config in preset_configs().values()}
    first = SAMPLER_CLASSES[kinds.pop() if len(kinds) == 1 else "emulator"].__name__
    # The refs are still pydantic's internal ones here (".../qmu_core__config__hardware__EmulatorSampler-Input__1").
    schema["anyOf"].sort(key=lambda variant: first not in re.split(r"[/_-]+", str(variant.get("$ref", ""))))


class HardwareConfig(Section):
    """Re-evaluation of trained models through a `cirq.Sampler` with finite shots (`qmu hardware`)."""

    sampler: SamplerConfig = Field(
        EmulatorSampler(),
        description=(
            "What measures the circuits (`kind`): `qsim`, `qsim_noisy`, `google_virtual`, `google_noisy_qvm`, "
            "`google_engine` (the real device) or `emulator` (exact noisy distributions, the default)."
        ),
        json_schema_extra=_any_of,
    )
    repetitions: int = Field(1000, strict=True, ge=1, le=1_000_000, description="Shots per record and model.")
    records_per_group: int = Field(
        50,
        strict=True,
        ge=1,
        le=100_000,
        description=(
            "Records measured per group (role x forget/retained; target members, non-members, test), drawn at "
            "random with `run.seed`; fewer if a group is smaller."
        ),
    )
    seeds: int = Field(
        1,
        strict=True,
        ge=1,
        le=20,
        description=(
            "Training seeds whose models `qmu hardware` measures (the run's repeats 0 to seeds-1, at most "
            "`unlearn.seeds`): the device's deletion table is their mean with a CI over seeds and records. "
            "`qmu shots` and `qmu leak-map` measure repeat 0."
        ),
    )
    shots: tuple[StrictInt, ...] = Field(
        (10, 100, 1000, 10000),
        min_length=1,
        description="Shot-count study (`qmu shots`): repetitions to compare, beside the exact (infinite-shot) outputs.",
    )
    measure_references: bool = Field(
        True,
        strict=True,
        description=(
            "Measure the attacker's reference models on the same sampler and shots, so attacks compare like with "
            "like (LiRA's reference distributions then include the device's noise); false: simulated references."
        ),
    )
    max_total_shots: int = Field(
        0,
        strict=True,
        ge=0,
        description=(
            "Most shots one run may measure (models x records x shots, summed over `shots` for `qmu shots`), "
            "checked before any circuit is measured; 0: no cap. `qmu hardware --dry-run` shows a run's total."
        ),
    )
    noise_map: tuple[NoiseSetting, ...] = Field(
        NOISE_MAP,
        min_length=1,
        description=(
            "Leakage map (`qmu leak-map`): the noise settings (rows), each measured at every shot count of `shots` "
            "and at infinite shots (columns); default noiseless, willow_pink x0.5, x1, x2 and weber."
        ),
    )
    cpu_threads: int = Field(0, strict=True, ge=0, le=256, description="Simulator threads; 0: every core.")
    timeout_s: float = Field(
        60.0,
        strict=True,
        ge=1,
        le=86_400,
        description=(
            "Seconds one call to the real Quantum Engine (`google_engine`) may take before the run fails with "
            "the endpoint and the likely cause (no network, no credentials); raise it for a long device queue."
        ),
    )

    @field_validator("shots")
    @classmethod
    def _positive_shots(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [v for v in value if v < 1 or v > 1_000_000]
        if bad or len(set(value)) != len(value):
            raise ValueError(
                f"hardware.shots={list(value)}: list distinct repetitions from 1 to 1,000,000, e.g. [10, 100, 1000]."
            )
        return tuple(sorted(value))

    @field_validator("noise_map")
    @classmethod
    def _distinct_settings(cls, value: tuple[NoiseSetting, ...]) -> tuple[NoiseSetting, ...]:
        labels = [s.label for s in value]
        twice = sorted({label for label in labels if labels.count(label) > 1})
        if twice:
            raise ValueError(
                f"hardware.noise_map lists {', '.join(twice)} more than once (every processor at scale 0 is "
                "'noiseless'); list each setting once."
            )
        return value
