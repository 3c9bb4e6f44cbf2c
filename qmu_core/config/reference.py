"""The configuration reference in Markdown, generated from the config's field metadata."""

from __future__ import annotations

import json

from pydantic import BaseModel

from qmu_core.config import SAMPLERS, QMUConfig

__all__ = ["reference_markdown"]


def reference_markdown() -> str:
    """The configuration reference of docs/config.md: one table per section, from the field metadata."""
    lines: list[str] = []
    for section, field in QMUConfig.model_fields.items():
        cls = field.annotation
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):  # `preset`, beside the sections
            lines += ["", f"**`{section}`** (default `{field.default}`): {field.description}"]
            continue
        assert cls.__doc__ is not None
        lines += ["", f"**`{section}`**: {cls.__doc__.strip().splitlines()[0]}", ""]
        lines += ["| field | default | meaning |", "|---|---|---|"]
        for name, f in cls.model_fields.items():
            d = f.default
            if isinstance(d, BaseModel):
                text = json.dumps(d.model_dump(mode="json"))
            else:
                items = (
                    [x.model_dump(mode="json") if isinstance(x, BaseModel) else x for x in d]
                    if isinstance(d, tuple)
                    else []
                )
                text = json.dumps(items) if isinstance(d, tuple) else ("null" if d is None else str(d))
            text = text if len(text) <= 30 else text[:27] + "..."
            lines.append(f"| `{section}.{name}` | `{text}` | {f.description} |")
        if section == "hardware":
            lines += _sampler_tables()
    return "\n".join(lines).lstrip("\n") + "\n"


def _plain(values: tuple[object, ...]) -> list[object]:
    """A tuple default as JSON values (config sections as their dumps)."""
    return [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in values]


def _sampler_tables() -> list[str]:
    """One table per `hardware.sampler` kind: its fields beside `kind`."""
    lines = ["", "`hardware.sampler` is one of these kinds (`--set hardware.sampler.kind=<kind>`):", ""]
    lines += ["| kind | what | fields (default) |", "|---|---|---|"]
    for kind, cls in SAMPLERS.configs().items():
        doc = " ".join((cls.__doc__ or "").split())
        fields = ", ".join(f"`{name}` ({f.default})" for name, f in cls.model_fields.items() if name != "kind")
        lines.append(f"| `{kind}` | {doc} | {fields or '-'} |")
    return lines
