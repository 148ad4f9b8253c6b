"""Writing the model artifacts: stable JSON, atomic file replacement."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

MODEL_FILE = "model.onnx"
MODEL_CARD_FILE = "model_card.json"
BASELINE_FILE = "baseline.json"
METRIC_DECIMALS = 6


def round_floats(value: object, decimals: int = METRIC_DECIMALS) -> object:
    """`value` with every float rounded (for human-facing numbers such as metrics)."""
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, dict):
        return {key: round_floats(item, decimals) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [round_floats(item, decimals) for item in value]
    return value


def dump_json(document: object) -> bytes:
    """Sorted keys, two-space indent, shortest round-trip floats, no NaN: byte-stable."""
    return (json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n").encode()


def write_atomically(path: Path, content: bytes) -> None:
    """Replace `path` with `content` so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
