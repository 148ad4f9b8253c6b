"""The code passes the project's own lint, format and type checks (the same ones `make lint` runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=600
    )


def test_ruff_lint_is_clean() -> None:
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    result = run(str(BIN / "mypy"), "functions", "local", "models", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


MAX_COMPLEXITY = 15  # per function or method of functions/, as radon counts it


def test_no_function_shipped_to_lambda_is_more_complex_than_the_limit() -> None:
    from radon.complexity import cc_visit  # noqa: PLC0415 - a dev dependency, only here

    def functions_and_methods(source: str) -> list[Any]:
        blocks = cc_visit(source)  # a class's methods are inside its block
        return [
            *blocks,
            *(method for block in blocks for method in getattr(block, "methods", [])),
        ]

    checked: list[Any] = []
    for path in sorted((ROOT / "functions").rglob("*.py")):
        for block in functions_and_methods(path.read_text(encoding="utf-8")):
            if getattr(block, "methods", None) is not None:
                continue  # a class: its methods are counted one by one
            checked.append(block)
    too_complex = [
        f"{block.name} at line {block.lineno} ({block.complexity})"
        for block in checked
        if block.complexity > MAX_COMPLEXITY
    ]
    assert len(checked) > 100  # the walk found the code
    assert too_complex == [], f"split these (radon cyclomatic complexity > {MAX_COMPLEXITY})"


def test_the_import_layers_hold() -> None:
    """handlers > aws > stages > core, stages independent, no AWS SDK below aws, a lean preprocess."""
    result = subprocess.run(
        [str(BIN / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "functions")},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout, result.stdout


# What the preprocess function's bundle lacks (functions/requirements.txt has none of them):
# importing its handler must not need them, at import or through a lazy import at init.
NOT_IN_THE_PREPROCESS_BUNDLE = ("numpy", "onnxruntime", "matplotlib", "scipy", "pandas")


def test_the_preprocess_handler_imports_without_numpy_onnxruntime_or_matplotlib() -> None:
    blocker = f"""
import importlib.abc, os, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_IN_THE_PREPROCESS_BUNDLE!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in the bundle)")
sys.meta_path.insert(0, Absent())
os.environ.update(
    AWS_DEFAULT_REGION="us-east-1", AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
    ENTITY_STATE_TABLE="s", FEATURES_TABLE="f", QUARANTINE_TABLE="q", MONITORING_TABLE="m",
    FEATURES_STREAM_NAME="k",
)
import streamscore.handlers.preprocess
print("imported")
"""
    result = subprocess.run(
        [sys.executable, "-c", blocker],
        cwd=ROOT / "functions",
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "imported"


def pins(requirements: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in requirements.read_text().splitlines())
    return {line for line in lines if line}


def test_the_package_metadata_declares_the_pins_sam_build_installs(tmp_path: Path) -> None:
    """pyproject's dependencies are the functions' bundle; its extras the two layers."""
    code = (
        "import sys; from setuptools import build_meta as b; "
        "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))"
    )
    built = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    metadata = (tmp_path / built.stdout.split()[-1] / "METADATA").read_text()
    declared = {
        line.removeprefix("Requires-Dist: ")
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist: ")
    }
    assert {d for d in declared if ";" not in d} == pins(ROOT / "functions/requirements.txt")
    for extra, layer in (("scoring", "onnxruntime"), ("plotting", "plotting")):
        in_extra = {d.split(";")[0].strip() for d in declared if f'extra == "{extra}"' in d}
        assert in_extra == pins(ROOT / "layers" / layer / "requirements.txt")
