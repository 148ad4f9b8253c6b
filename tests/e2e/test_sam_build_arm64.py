"""`sam build` (no Docker) ships native code of the chosen Architecture in every function and layer.

An arm64 function that loads an x86-64 .so (pydantic_core, numpy, onnxruntime) fails at every
cold start, so this reads the ELF header of every file `sam build` writes. It builds x86_64 and
then arm64 into the same build and cache directories with `--cached --parallel`, as `make build`
does when Architecture changes, so a cache that ignored the architecture would fail it too.

Both builds download Linux wheels from PyPI: about two minutes on an idle 2-core machine, over
five under load, so they run only when asked: `make test-build` (SAM_BUILD_TESTS=1).
"""

from __future__ import annotations

import _json
import os
import platform
import select
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from pydantic_core import _pydantic_core

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RUN_ENV_VAR = "SAM_BUILD_TESTS"

# e_machine values of the ELF header (System V ABI, "ELF Header").
EM_X86_64 = 0x3E
EM_AARCH64 = 0xB7
MACHINES = {"x86_64": EM_X86_64, "arm64": EM_AARCH64}

unless_asked = pytest.mark.skipif(
    not os.environ.get(RUN_ENV_VAR),
    reason=f"two full sam builds (~2 min, PyPI downloads): `make test-build` ({RUN_ENV_VAR}=1)",
)


def elf_machine(path: Path) -> int | None:
    """The e_machine of an ELF file (offset 18, in the file's byte order); None if not ELF."""
    with path.open("rb") as file:
        header = file.read(20)
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def elf_files(build_dir: Path) -> dict[str, dict[Path, int]]:
    """Every ELF file of the build, by artefact (the build dir's first level: function or layer)."""
    found: dict[str, dict[Path, int]] = defaultdict(dict)
    for path in build_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            machine = elf_machine(path)
            if machine is not None:
                relative = path.relative_to(build_dir)
                found[relative.parts[0]][relative] = machine
    return found


def sam_build(architecture: str, work: Path) -> float:
    """`sam build` of template.yaml for one Architecture into work/build; its wall time in s."""
    # An empty config file: the build depends on the command line alone, not on samconfig.toml.
    config = work / "samconfig.toml"
    config.write_text("version = 0.1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # sam build looks for python3.13 on PATH: the venv's.
    env.update(PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}", SAM_CLI_TELEMETRY="0")
    command = [
        str(VENV_BIN / "sam"),
        "build",
        "--template-file",
        str(ROOT / "template.yaml"),
        "--config-file",
        str(config),
        "--build-dir",
        str(work / "build"),
        "--cache-dir",
        str(work / "cache"),
        "--cached",
        "--parallel",
        "--parameter-overrides",
        f"Architecture={architecture}",
    ]
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"architecture: {architecture}" in result.stdout + result.stderr
    return elapsed


def assert_all_native_code_is(build_dir: Path, machine: int) -> None:
    found = elf_files(build_dir)
    wrong = {
        str(path): hex(actual)
        for files in found.values()
        for path, actual in files.items()
        if actual != machine
    }
    assert not wrong, f"ELF files not for e_machine {hex(machine)}: {wrong}"
    # The native code the functions load is really there (pydantic_core in every function's
    # bundle, onnxruntime and numpy in OnnxRuntimeLayer), not merely absent.
    for function in ("PreprocessFunction", "ScoreFunction", "DriftCheckFunction"):
        assert any(p.parts[1] == "pydantic_core" for p in found[function]), function
    layer = {p.parts[2] for p in found["OnnxRuntimeLayer"]}  # OnnxRuntimeLayer/python/<package>/...
    assert {"onnxruntime", "numpy"} <= layer, layer


def test_elf_machine_reads_this_interpreters_own_extension_modules() -> None:
    host = {"x86_64": EM_X86_64, "aarch64": EM_AARCH64, "arm64": EM_AARCH64}.get(platform.machine())
    if host is None or sys.platform != "linux":
        pytest.skip(f"no ELF e_machine known for {sys.platform} {platform.machine()}")
    files = [getattr(module, "__file__", None) for module in (_json, select, _pydantic_core)]
    modules = [Path(file) for file in files if file and file.endswith(".so")]
    assert modules

    assert {elf_machine(path) for path in modules} == {host}
    assert elf_machine(ROOT / "template.yaml") is None


@pytest.mark.slow
@unless_asked
def test_x86_64_then_arm64_builds_ship_only_their_own_native_code(tmp_path: Path) -> None:
    # given: a build for x86_64 (the template default)
    x86_seconds = sam_build("x86_64", tmp_path)
    assert_all_native_code_is(tmp_path / "build", MACHINES["x86_64"])
    # the retraining build's code (runner/Makefile): what `python -m models retrain` imports,
    # its locked requirements, no bytecode
    code = tmp_path / "build" / "TrainingCodeLayer" / "streamscore-retrain"
    for needed in (
        "models/__main__.py",
        "models/lifecycle/retrain_command.py",
        "models/training/pipeline.py",
        "models/artifacts/model.onnx",
        "functions/streamscore/core/registry.py",
        "local/simulator/__init__.py",
        "requirements.txt",
    ):
        assert (code / needed).is_file(), needed
    assert not list(code.rglob("__pycache__"))

    # when: Architecture=arm64, into the same build and cache directories
    arm_seconds = sam_build("arm64", tmp_path)

    # then: every ELF file of every function and layer is AArch64
    assert_all_native_code_is(tmp_path / "build", MACHINES["arm64"])
    print(f"sam build: x86_64 {x86_seconds:.0f} s, arm64 {arm_seconds:.0f} s")
