"""The schema of ``aikit.json`` (pydantic, strict), imported by ``aikit.model.manifest`` when a manifest is read.

Kept apart so that importing aikit does not build it: pydantic's schema for these classes costs
about 15 MB of memory.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints, field_validator

__all__ = ["Manifest", "SourceEntry"]

Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
RegisteredName = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class _Data(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class SourceEntry(_Data):
    """Where the saved model originally came from (informational)."""

    kind: str
    location: str
    sha256: str | None = None


class Manifest(_Data):
    """Schema of ``aikit.json``. Backend- and task-specific settings are JSON, validated by their owners.

    ``task_state["preprocess"]`` is an ``ImagePreprocess`` field dict, or (a callable's
    ``module:qualname``) a name kept for error messages that is never resolved.
    """

    format_version: Annotated[int, Field(ge=1)]
    task: RegisteredName
    task_state: dict[str, JsonValue] = Field(default_factory=dict)
    labels: list[str] | None = None
    backend: RegisteredName
    backend_state: dict[str, JsonValue] = Field(default_factory=dict)
    backend_info: dict[str, JsonValue] = Field(default_factory=dict)
    source: SourceEntry | None = None
    transformations: list[dict[str, JsonValue]] = Field(default_factory=list)
    compression_report: JsonValue = None
    optimization_report: JsonValue = None
    files: dict[str, Sha256]
    versions: dict[str, str] = Field(default_factory=dict)
    created: str | None = None

    @field_validator("task_state")
    @classmethod
    def _preprocess_is_data(cls, value: dict[str, JsonValue]) -> dict[str, JsonValue]:
        preprocess = value.get("preprocess")
        if preprocess is not None and not isinstance(preprocess, (str, dict)):
            raise ValueError("'preprocess' must be an ImagePreprocess field object or a recorded function name")
        return value

    @field_validator("transformations")
    @classmethod
    def _strategies_are_named(cls, value: list[dict[str, JsonValue]]) -> list[dict[str, JsonValue]]:
        for index, record in enumerate(value):
            if not isinstance(record.get("strategy"), str):
                raise ValueError(f"transformation {index} needs a 'strategy' name (a string)")
        return value
