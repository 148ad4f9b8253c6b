"""The code passes the project's own lint, format and type checks (the same ones `make lint` runs)."""

from __future__ import annotations

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
