"""What every QMU flow run does before its first stage: check its config, name and tag itself.

* `accepts_config`: the flows take `config` unvalidated by Prefect (``validate_parameters=False``)
  and validate it here. A rule between two fields (forget class 42 of classes 0-9), which the
  server's JSON-schema check cannot see, then fails the run with the rule's message alone: the
  run's state message and its one ERROR line, no Prefect traceback.
* `run_name` (the flows' ``flow_run_name``): ``<preset>-<request>-<key>-<prefect's name>``, e.g.
  ``default-class4-3f2a9c-brave-otter``, where the key is a digest of the resolved config, so
  runs of one config share it and a changed field shows as another key. The run's folder under
  ``<artifact root>/runs/`` takes the same name.
* Tags ``preset:<name>``, ``model:<kind>``, ``request:<class|samples>`` on the flow run, for the
  UI's filters.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from prefect.context import FlowRunContext
from prefect.states import Failed, State
from pydantic import ValidationError

from qmu_core.config import QMUConfig, validate
from qmu_core.errors import ConfigError
from qmu_prefect.log import best_effort

__all__ = ["accepts_config", "as_config", "audit_run_name", "fail_with", "run_name", "run_tags", "tag_run"]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("qmu.runs")


def as_config(value: Any) -> QMUConfig:
    """`value` (a `QMUConfig`, or the JSON a form, deployment or API call sent) as a `QMUConfig`.

    Raises:
        ConfigError: With the rules' own messages, one per broken rule.
    """
    if isinstance(value, QMUConfig):
        return value
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"config must be an object of sections ({{'preset': 'tiny', ...}}), got {type(value).__name__}."
        )
    try:
        return QMUConfig.model_validate(value)
    except ValidationError as exc:
        rules = [e["msg"].removeprefix("Value error, ") for e in exc.errors() if e["type"] == "value_error"]
        if rules and len(rules) == len(exc.errors()):
            raise ConfigError(" ".join(rules)) from None  # our rules name the fields, the value and the fix
    return validate(value, "the flow run's config")  # the field-by-field message


def _request(config: QMUConfig) -> str:
    data = config.data
    return f"class{data.forget_class}" if data.forget == "class" else f"samples{len(data.forget_ids)}"


def _key(config: QMUConfig) -> str:
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:6]


def run_tags(config: QMUConfig) -> list[str]:
    """The flow run's tags: preset, model kind, request kind."""
    return [f"preset:{config.preset or 'none'}", f"model:{config.model.kind}", f"request:{config.data.forget}"]


def _current() -> tuple[str, dict[str, Any]]:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return "run", {}
    return context.flow_run.name, dict(context.parameters or {})


def run_name(prefix: str = "") -> Callable[[], str]:
    """A ``flow_run_name`` callable: ``[<prefix>-]<preset>-<request>-<key>-<prefect's name>``.

    Prefect's random name, or the one a user typed, stays as the suffix.
    """

    def name() -> str:
        current, parameters = _current()
        try:
            config = as_config(parameters.get("config"))
        except ConfigError:
            return current  # the run fails on its config next; keep Prefect's name
        parts = [prefix, config.preset or "custom", _request(config), _key(config), current]
        return "-".join(p for p in parts if p)

    return name


def audit_run_name() -> str:
    """``audit-<what>-<prefect's name>``: what the `source` parameter names.

    That is a run's name, a folder's or a model key; ``latest`` for an empty source (the UI's Quick run).
    """
    import re

    current, parameters = _current()
    source = str(parameters.get("source") or "").split(",")[0].strip().rstrip("/")
    parts = [p for p in re.split(r"[\\/]", source) if p and p not in ("summary.json", ".", "..")]
    what = parts[-1].removesuffix(".parquet") if parts else "latest"
    if current.startswith(f"audit-{what}"):
        return current
    return f"audit-{what[:60]}-{current}"


def fail_with(message: str) -> State[Any]:
    """End the flow run Failed with `message` as its state message and its one ERROR line.

    No traceback: for input the run cannot use, where the message says itself what to change.
    """
    from prefect import get_run_logger

    get_run_logger().error(message)
    return Failed(message=message)


def tag_run(config: QMUConfig) -> None:
    """Add `run_tags` to the flow run in progress (`best_effort`: tags never fail a run)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    flow_run_id = context.flow_run.id
    tags = sorted({*(context.flow_run.tags or []), *run_tags(config)})
    if best_effort(lambda client: client.update_flow_run(flow_run_id=flow_run_id, tags=tags)) is None:
        logger.debug("could not tag the flow run (the Prefect API did not answer)")


def accepts_config(fn: F) -> F:
    """Wrap a flow body whose first parameter is ``config``: validate it, tag the run, call the body.

    A failed rule ends the run Failed with that message alone; the body gets a `QMUConfig`.
    """

    @functools.wraps(fn)
    def body(config: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            checked = as_config(config)
        except ConfigError as exc:
            return fail_with(str(exc))
        tag_run(checked)
        return fn(checked, *args, **kwargs)

    return body  # type: ignore[return-value]
