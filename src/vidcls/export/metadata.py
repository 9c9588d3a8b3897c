"""The ``vidcls.*`` metadata of an exported ONNX model (``metadata_props``, JSON strings): what a
deployed model needs besides its graph. The keys are listed in :mod:`vidcls.export`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["read_onnx_metadata", "set_metadata"]

PREFIX = "vidcls."


def set_metadata(proto, props: dict[str, str]) -> None:
    """Add or replace ``props`` (full keys, string values) in the ``onnx.ModelProto``."""
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in props.items():
        entry = existing.get(key) or proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """The ``vidcls.*`` metadata of an exported model, JSON-decoded, without the prefix."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    out = {}
    for prop in proto.metadata_props:
        if prop.key.startswith(PREFIX):
            try:
                out[prop.key[len(PREFIX):]] = json.loads(prop.value)
            except json.JSONDecodeError:
                out[prop.key[len(PREFIX):]] = prop.value
    return out
