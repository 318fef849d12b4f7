"""``ArtifactFacts``: the graph facts an ONNX Runtime artifact records, validated when it is loaded.

Imported only when an artifact is opened: pydantic's schema costs memory that a process running a
GGUF file's cached graph need not pay.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

__all__ = ["GRAPHS", "ArtifactFacts"]

GRAPHS = {"single": {"model"}, "decoder": {"model"}, "seq2seq": {"encoder", "decoder"}}


class ArtifactFacts(BaseModel):
    """The graph facts an artifact's ``backend_state`` records, validated before any graph is opened.

    Only the fields the backend reads are typed; the rest (validation figures, fusion counts, ...)
    are reporting data and stay JSON.
    """

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)
    kind: Literal["single", "decoder", "seq2seq"]
    graphs: dict[str, Annotated[str, Field(min_length=1, max_length=1024)]]
    rename_outputs: dict[str, str] | None = None
    context: Annotated[int, Field(ge=1)] | None = None
    kv_heads: Annotated[int, Field(ge=1)] | None = None
    head_dim: Annotated[int, Field(ge=1)] | None = None
    shared: bool = False
    decoder_start_token_id: Annotated[int, Field(ge=0)] | None = None
    dtype: str = "float32"
    fusions: dict[str, JsonValue] | None = None

    @model_validator(mode="after")
    def _complete(self) -> ArtifactFacts:
        if set(self.graphs) != GRAPHS[self.kind]:
            wanted = sorted(GRAPHS[self.kind])
            raise ValueError(f"a {self.kind!r} model has graphs {wanted}, not {sorted(self.graphs)}")
        if self.kind == "decoder" and (self.kv_heads is None or self.head_dim is None):
            raise ValueError("a decoder needs kv_heads and head_dim")
        return self
