"""RetrainProject's build command as its buildspec runs it: the `python -m models` line of the
build phase, its words as bash (the buildspec's `env.shell`) expands them with the build's
environment variables. The closed loop runs these words in-process; a template test parses them
with the real CLI."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import Any

import yaml

PROJECT = "RetrainProject"
MODELS = "python -m models "


def build_command(template: Mapping[str, Any]) -> str:
    """The build phase's `python -m models retrain` line."""
    buildspec = yaml.safe_load(template["Resources"][PROJECT]["Properties"]["Source"]["BuildSpec"])
    (command,) = [c for c in buildspec["phases"]["build"]["commands"] if f"{MODELS}retrain" in c]
    return str(command)


def shell(template: Mapping[str, Any]) -> str:
    buildspec = yaml.safe_load(template["Resources"][PROJECT]["Properties"]["Source"]["BuildSpec"])
    return str(buildspec["env"]["shell"])


def project_variables(template: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The project's environment variables (Name, Value as the template writes it)."""
    return list(template["Resources"][PROJECT]["Properties"]["Environment"]["EnvironmentVariables"])


def expand(command: str, variables: Mapping[str, str]) -> list[str]:
    """The words after `python -m models` as bash expands them with `variables` alone."""
    return subprocess.run(
        ["bash", "-c", f"printf '%s\\n' {command.split(MODELS, 1)[1]}"],
        env=dict(variables),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
