"""prefect.yaml points at real flows and carries configs QMUConfig accepts."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from qmu_core.config import QMUConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_resolves_and_validates() -> None:
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    names = [d["name"] for d in spec["deployments"]]
    assert names == ["smoke", "default", "paper", "hardware", "shots"]
    flows = {"smoke": "qmu-pipeline", "default": "qmu-pipeline", "paper": "qmu-pipeline"}
    flows |= {"hardware": "qmu-hardware", "shots": "qmu-shots"}
    for dep in spec["deployments"]:
        path, _, fn = dep["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        flow = getattr(module, fn)
        assert flow.name == flows[dep["name"]]
        config = QMUConfig.model_validate(dep.get("parameters", {}).get("config", {}))
        assert config.data.forget_class in config.data.classes
        for sched in dep.get("schedules", []):
            assert len(sched["cron"].split()) == 5


@pytest.mark.parametrize(("index", "name"), [(0, "tiny"), (1, "default")])
def test_deployments_are_their_presets(index: int, name: str) -> None:
    from qmu_core.presets import preset

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = QMUConfig.model_validate(spec["deployments"][index]["parameters"]["config"])
    assert deployed.model_dump(exclude={"run"}) == preset(name).model_dump(exclude={"run"})


@pytest.mark.parametrize("index", [3, 4])
def test_hardware_deployments_are_paper_angle_on_the_willow_pink_emulator(index: int) -> None:
    from qmu_core.config import EmulatorSampler
    from qmu_core.presets import preset

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = QMUConfig.model_validate(spec["deployments"][index]["parameters"]["config"])
    paper = preset("paper_angle")
    assert deployed.model_dump(exclude={"run", "hardware"}) == paper.model_dump(exclude={"run", "hardware"})
    assert deployed.hardware.sampler == EmulatorSampler(processor="willow_pink")


def test_paper_deployment_is_the_paper_preset_without_the_data_path() -> None:
    from qmu_core.presets import preset

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployed = QMUConfig.model_validate(spec["deployments"][2]["parameters"]["config"])
    paper = preset("paper")
    assert deployed.model_dump(exclude={"run", "data"}) == paper.model_dump(exclude={"run", "data"})
    assert deployed.data == paper.data


def test_the_flow_form_starts_from_the_default_preset() -> None:
    import inspect

    from flows.pipeline import qmu_pipeline
    from qmu_core.presets import preset

    default = inspect.signature(qmu_pipeline.fn).parameters["config"].default
    assert default == preset("default")


def test_flow_parameter_schema_is_the_config_form() -> None:
    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import qmu_pipeline

    schema = parameter_schema(qmu_pipeline.fn).model_dump()
    assert list(schema["properties"]) == ["config"]
    definitions = schema["definitions"]
    for section in ("RunConfig", "DataConfig", "ModelConfig", "TrainConfig", "AttackConfig", "UnlearnConfig"):
        assert section in definitions
    assert definitions["TrainConfig"]["properties"]["optimizer"]["enum"] == ["sgd", "nesterov", "adam"]


def test_the_hardware_form_offers_every_sampler_kind_and_the_server_validates_them() -> None:
    """What Prefect's UI renders (the parameter schema) and validates (jsonschema, as the server does)."""
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import is_valid

    from flows.hardware import qmu_hardware
    from qmu_core.config import SAMPLER_KINDS

    schema = parameter_schema(qmu_hardware.fn).model_dump()
    sampler = schema["definitions"]["HardwareConfig"]["properties"]["sampler"]
    refs = [option["$ref"].rsplit("/", 1)[1] for option in sampler["anyOf"]]
    kinds = [schema["definitions"][r]["properties"]["kind"]["default"] for r in refs]
    assert kinds == list(SAMPLER_KINDS)
    for kind in SAMPLER_KINDS:
        assert is_valid({"config": {"hardware": {"sampler": {"kind": kind}}}}, schema), kind
    assert is_valid({"config": {"hardware": {"sampler": {"kind": "google_noisy_qvm", "processor": "weber"}}}}, schema)
    assert not is_valid({"config": {"hardware": {"sampler": {"kind": "ibm"}}}}, schema)
    assert not is_valid({"config": {"hardware": {"sampler": {"kind": "google_virtual", "processor": "x"}}}}, schema)
