"""Registry versions made from the shipped model: the same ONNX file under another version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "artifacts"


def renamed_model(parent: Path, version: str, **card_changes: Any) -> Path:
    """The shipped model under another version (its card and baseline say so) in
    `parent/version`, other card fields changed."""
    directory = parent / version
    shutil.copytree(MODEL_DIR, directory)
    card = json.loads((directory / "model_card.json").read_text())
    card |= {"model_version": version, **card_changes}
    (directory / "model_card.json").write_text(json.dumps(card))
    baseline = json.loads((directory / "baseline.json").read_text())
    (directory / "baseline.json").write_text(json.dumps(baseline | {"model_version": version}))
    return directory
