"""The README documents what the repo has: every template parameter, every make target it names."""

from __future__ import annotations

import re
from pathlib import Path

from embedded.template import load_template

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_template_parameter_is_in_the_readme_table_with_its_default() -> None:
    parameters = load_template(ROOT / "template.yaml")["Parameters"]
    rows = dict(re.findall(r"^\| `(\w+)` \| (.*?) \|", README, flags=re.MULTILINE))

    missing = sorted(set(parameters) - set(rows))
    assert not missing, f"parameters missing from README.md: {missing}"
    for name, spec in parameters.items():
        default = str(spec.get("Default", ""))
        assert rows[name] == ("(empty)" if default == "" else f"`{default}`"), name


def test_make_targets_the_readme_names_exist() -> None:
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-zA-Z_-]+):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"`make ([a-z-]+)", README))

    assert named, "the README names no make target"
    assert named <= targets, f"README names missing targets: {sorted(named - targets)}"
