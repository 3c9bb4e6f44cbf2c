"""prefect.yaml points at real flows and carries configs QMUConfig accepts."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from qmu_core.config import QMUConfig

ROOT = Path(__file__).resolve().parents[2]


DEPLOYMENTS = {  # name: (flow, preset)
    "smoke": ("qmu-pipeline", "tiny"),
    "default": ("qmu-pipeline", "default"),
    "paper": ("qmu-pipeline", "paper"),
    "paper_hqnn": ("qmu-pipeline", "paper_hqnn"),
    "audit": ("qmu-audit", None),  # audits a run with that run's own config: no preset, nothing required
    "audit-external": ("qmu-audit-external", "default"),
    "hardware": ("qmu-hardware", "paper_angle"),
    "shots": ("qmu-shots", "paper_angle"),
    "leak-map": ("qmu-leak-map", "device_leak"),
    "reproduce": ("qmu-reproduce", None),  # its own parameter (ReproduceConfig), every field defaulted
}


def test_every_deployment_resolves_and_names_its_preset_only() -> None:
    """A deployment names its preset instead of repeating its values, so the two cannot drift."""
    from qmu_core.config import preset

    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert [d["name"] for d in spec["deployments"]] == list(DEPLOYMENTS)
    for dep in spec["deployments"]:
        flow_name, preset_name = DEPLOYMENTS[dep["name"]]
        path, _, fn = dep["entrypoint"].partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert getattr(module, fn).name == flow_name
        if preset_name is None:
            assert dep["parameters"] == {}, dep["name"]
        else:
            assert dep["parameters"] == {"config": {"preset": preset_name}}, dep["name"]
            assert QMUConfig.model_validate(dep["parameters"]["config"]) == preset(preset_name)
        assert dep["work_pool"]["name"] == "qmu-process"
        # an explicit list: `prefect deploy` prompts for schedules when the key is missing
        assert isinstance(dep["schedules"], list), dep["name"]
        for sched in dep["schedules"]:
            assert len(sched["cron"].split()) == 5
    assert [s["slug"] for s in spec["deployments"][0]["schedules"]] == ["nightly-smoke"]


def test_the_deploy_step_requires_qmu_repo_to_be_this_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from qmu_prefect.deploy import DeployError, check_repo

    monkeypatch.delenv("QMU_REPO", raising=False)
    with pytest.raises(DeployError, match=r"QMU_REPO is not set.*QMU_REPO=\$PWD prefect deploy --all"):
        check_repo()
    monkeypatch.setenv("QMU_REPO", str(tmp_path))
    with pytest.raises(DeployError, match="is not a QMU checkout: prefect.yaml, flows/pipeline.py"):
        check_repo()
    monkeypatch.setenv("QMU_REPO", str(ROOT))
    assert check_repo() == {"directory": str(ROOT)}


def test_the_form_sends_only_changed_fields_and_the_preset_fills_the_rest() -> None:
    """Prefect's form fills every field that has a schema default into the run's parameters.

    As seen in a browser (tests/e2e). The form schema has none, so a form run is the deployment's
    preset plus the fields changed. This is the body the UI sent for one changed field.
    """
    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools.validation import is_valid

    from flows.pipeline import qmu_pipeline
    from qmu_core.config import preset

    schema = parameter_schema(qmu_pipeline.fn).model_dump()
    for name, definition in schema["definitions"].items():
        for field, prop in definition.get("properties", {}).items():
            # only a sampler variant's tag (its const): the form must send the kind with any edited field
            assert "default" not in prop or "const" in prop, f"{name}.{field} has a schema default; the form sends it"
    epochs = schema["definitions"]["TrainConfig"]["properties"]["epochs"]["description"]
    assert "tiny: 3" in epochs and "default, device_leak: 60" in epochs
    sent = {"config": {"preset": "tiny", "train": {"epochs": 2}}}
    assert is_valid(sent, schema)
    assert QMUConfig.model_validate(sent["config"]) == preset("tiny", train={"epochs": 2})
    assert not is_valid({"config": {"preset": "tiny", "train": {"epochs": -3}}}, schema)
    assert not is_valid({"config": {"preset": "huge"}}, schema)


def test_the_flow_form_starts_from_the_default_preset() -> None:
    import inspect

    from flows.pipeline import qmu_pipeline
    from qmu_core.config import preset

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
    kinds = [schema["definitions"][r]["properties"]["kind"]["const"] for r in refs]
    assert all("kind" in schema["definitions"][r]["required"] for r in refs)  # the form must send the tag
    assert sorted(kinds) == sorted(SAMPLER_KINDS) and kinds[0] == "emulator"  # the presets' kind is preselected
    for kind in SAMPLER_KINDS:
        assert is_valid({"config": {"hardware": {"sampler": {"kind": kind}}}}, schema), kind
    assert is_valid({"config": {"hardware": {"sampler": {"kind": "google_noisy_qvm", "processor": "weber"}}}}, schema)
    assert not is_valid({"config": {"hardware": {"sampler": {"kind": "ibm"}}}}, schema)
    assert not is_valid({"config": {"hardware": {"sampler": {"kind": "google_virtual", "processor": "x"}}}}, schema)
