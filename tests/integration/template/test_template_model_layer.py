"""The ModelLayer build: the model artifacts packaged as the score function loads them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from support.template_checks import (
    ROOT,
)

# ---------------------------------------------------------------- ModelLayer build


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    models = tmp_path / "models"
    (models / "training").mkdir(parents=True)
    shutil.copy(ROOT / "models" / "Makefile", models / "Makefile")
    (models / "training" / "train.py").write_text("# training code, never shipped\n")
    return models


def build_model_layer(models: Path, artifacts_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "make",
            "-s",
            "-f",
            str(models / "Makefile"),
            "build-ModelLayer",
            f"ARTIFACTS_DIR={artifacts_dir}",
        ],
        cwd=models,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_model_layer_ships_only_the_three_artifacts(model_dir: Path, tmp_path: Path) -> None:
    # given
    artifacts = model_dir / "artifacts"
    artifacts.mkdir()
    for name in ("model.onnx", "model_card.json", "baseline.json", "training_data.parquet"):
        (artifacts / name).write_text(name)
    out = tmp_path / "layer"

    # when
    result = build_model_layer(model_dir, out)

    # then
    assert result.returncode == 0, result.stderr
    shipped = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert shipped == ["model/baseline.json", "model/model.onnx", "model/model_card.json"]


def test_model_layer_build_says_what_is_missing(model_dir: Path, tmp_path: Path) -> None:
    # given
    (model_dir / "artifacts").mkdir()
    (model_dir / "artifacts" / "model.onnx").write_text("onnx")

    # when
    result = build_model_layer(model_dir, tmp_path / "layer")

    # then
    assert result.returncode != 0
    assert "model_card.json baseline.json" in result.stderr
    assert "make model" in result.stderr
