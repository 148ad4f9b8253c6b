"""`make build`'s samconfig check: build and deploy must resolve the build's template parameters alike.

The SAM CLI's own reader and writer (pinned in requirements/dev.txt) are the reference: the check
must resolve each command's entries and parse `parameter_overrides` as they do, and must refuse
what `sam deploy --guided` saves when it changes Architecture.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from samcli.cli.types import CfnParameterOverridesType
from samcli.commands.deploy.guided_config import GuidedConfig
from samcli.lib.config.samconfig import SamConfig

from embedded.samconfig import (
    SamconfigError,
    build_parameter_names,
    command_entries,
    compare,
    load_config,
    main,
    parse_parameter_overrides,
    resolve_overrides,
)
from embedded.template import Template, load_template

ROOT = Path(__file__).resolve().parents[2]
SAMCONFIG = ROOT / "samconfig.toml"


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(ROOT / "template.yaml")


@pytest.fixture(autouse=True)
def _no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAM_CLI_TELEMETRY", "0")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "samconfig.toml"
    path.write_text(text)
    return path


def save_like_guided_deploy(path: Path, answers: dict[str, str]) -> None:
    """What `sam deploy --guided` does with its parameter answers when told to save them."""
    samconfig = SamConfig(str(path.parent), path.name)
    GuidedConfig(template_file=None, section="parameters")._save_parameter_overrides(
        ["deploy"], "default", answers, samconfig
    )
    samconfig.flush()


def sam_cli_overrides(path: Path, command: str, env: str = "default") -> dict[str, str]:
    """The parameter overrides the SAM CLI itself resolves for `sam COMMAND` from this file."""
    entries = SamConfig(str(path.parent), path.name).get_all([command], "parameters", env=env)
    return dict(CfnParameterOverridesType().convert(entries.get("parameter_overrides"), None, None))


# ------------------------------------------------------------------ the repository's own files


def test_the_repository_keeps_parameter_overrides_in_the_global_table(template: Template) -> None:
    config = load_config(SAMCONFIG)

    for command in ("build", "deploy", "sync"):
        resolved = resolve_overrides(config, command)
        assert resolved.table == "[default.global.parameters]", command
        assert "Architecture" in resolved.overrides, command
        assert resolved.overrides == sam_cli_overrides(SAMCONFIG, command)
    agreed, mismatches = compare(config, template)
    assert mismatches == []
    assert agreed["Architecture"] in ("x86_64", "arm64")


def test_the_template_parameters_that_change_the_build(template: Template) -> None:
    names = build_parameter_names(template)

    assert "Architecture" in names
    # Read by the deployed stack, not by sam build (LogLevel is a function's environment).
    assert not names & {"ShardCount", "StreamMode", "LogLevel", "PreprocessMemorySize"}


def test_make_build_runs_the_check_before_sam_build() -> None:
    if shutil.which("make") is None:
        pytest.skip("no make")
    dry_run = subprocess.run(
        ["make", "-n", "build"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()

    check = [i for i, line in enumerate(dry_run) if "-m embedded.samconfig" in line]
    build = [i for i, line in enumerate(dry_run) if re.search(r"/sam build\b", line)]
    assert check and build, dry_run
    assert check[0] < build[0]


# ------------------------------------------------------------------ sam deploy --guided


def test_guided_deploy_choosing_arm64_makes_the_check_refuse(
    tmp_path: Path, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: the repository's samconfig.toml, then guided deploy answers with Architecture=arm64
    path = tmp_path / "samconfig.toml"
    shutil.copy(SAMCONFIG, path)
    save_like_guided_deploy(path, {"StreamMode": "ON_DEMAND", "Architecture": "arm64"})
    # (the SAM CLI itself now builds x86_64 and deploys arm64)
    assert sam_cli_overrides(path, "build").get("Architecture", "x86_64") == "x86_64"
    assert sam_cli_overrides(path, "deploy")["Architecture"] == "arm64"

    # when
    agreed, mismatches = compare(load_config(path), template)
    status = main(["--config-file", str(path)])

    # then
    assert [(m.parameter, m.build_value, m.deploy_value) for m in mismatches] == [
        ("Architecture", "x86_64", "arm64")
    ]
    assert mismatches[0].deploy_source == "parameter_overrides in [default.deploy.parameters]"
    assert "Architecture" not in agreed
    assert status == 1
    error = capsys.readouterr().err
    assert "Architecture: sam build x86_64" in error
    assert "sam deploy arm64 (parameter_overrides in [default.deploy.parameters])" in error
    assert "Fix: keep parameter_overrides in [default.global.parameters] only" in error


def test_guided_deploy_keeping_the_architecture_passes(
    tmp_path: Path, template: Template, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "samconfig.toml"
    shutil.copy(SAMCONFIG, path)
    architecture = resolve_overrides(load_config(path), "build").overrides["Architecture"]
    save_like_guided_deploy(path, {"Architecture": architecture, "ShardCount": "2"})

    assert compare(load_config(path), template)[1] == []
    assert main(["--config-file", str(path)]) == 0
    assert f"Architecture={architecture}" in capsys.readouterr().out


# ------------------------------------------------------------------ precedence, as the SAM CLI


CONFIGS = {
    "global only": ('[default.global.parameters]\nparameter_overrides = "Architecture=arm64"\n'),
    "deploy replaces the global entry whole": (
        "[default.global.parameters]\n"
        'parameter_overrides = "Architecture=arm64 ShardCount=2"\n'
        "[default.deploy.parameters]\n"
        'parameter_overrides = "ShardCount=3"\n'
    ),
    "build table only": (
        '[default.build.parameters]\nparameter_overrides = "Architecture=arm64"\n'
    ),
    "list in deploy": (
        "[default.global.parameters]\n"
        'parameter_overrides = "Architecture=arm64"\n'
        "[default.deploy.parameters]\n"
        'parameter_overrides = ["Architecture=arm64", "ShardCount=4"]\n'
    ),
    "none": "[default.deploy.parameters]\nresolve_s3 = true\n",
}
EXPECTED_MISMATCH = {
    "global only": False,
    "deploy replaces the global entry whole": True,  # deploy falls back to the template default
    "build table only": True,
    "list in deploy": False,
    "none": False,
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_command_resolves_what_the_sam_cli_resolves(
    name: str, tmp_path: Path, template: Template
) -> None:
    path = write(tmp_path, "version = 0.1\n" + CONFIGS[name])
    config = load_config(path)

    for command in ("build", "deploy"):
        entries = SamConfig(str(tmp_path), path.name).get_all([command], "parameters")
        assert command_entries(config, command) == dict(entries), command
        assert resolve_overrides(config, command).overrides == sam_cli_overrides(path, command)
    assert bool(compare(config, template)[1]) is EXPECTED_MISMATCH[name]


def test_the_deploy_table_replacing_the_global_overrides_loses_their_architecture(
    tmp_path: Path, template: Template
) -> None:
    # given
    path = write(tmp_path, CONFIGS["deploy replaces the global entry whole"])

    # when
    (mismatch,) = compare(load_config(path), template)[1]

    # then
    assert (mismatch.build_value, mismatch.build_source) == (
        "arm64",
        "parameter_overrides in [default.global.parameters]",
    )
    assert (mismatch.deploy_value, mismatch.deploy_source) == ("x86_64", "template default")


def test_another_config_env_reads_its_own_tables(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[prod.global.parameters]\nparameter_overrides = "Architecture=arm64"\n'
        '[prod.deploy.parameters]\nparameter_overrides = "Architecture=x86_64"\n',
    )

    assert main(["--config-file", str(path)]) == 0
    assert main(["--config-file", str(path), "--config-env", "prod"]) == 1


def test_no_samconfig_means_the_template_defaults_for_both(tmp_path: Path) -> None:
    assert main(["--config-file", str(tmp_path / "samconfig.toml")]) == 0


# ------------------------------------------------------------------ parameter_overrides forms


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Architecture=arm64 ShardCount=2", {"Architecture": "arm64", "ShardCount": "2"}),
        (
            "Architecture=\"arm64\" DriftSchedule='rate(1 hour)' LogLevel=a\\ b",
            {"Architecture": "arm64", "DriftSchedule": "rate(1 hour)", "LogLevel": "a b"},
        ),
        (
            "ParameterKey=Architecture,ParameterValue=arm64 ParameterKey=ShardCount,ParameterValue=2",
            {"Architecture": "arm64", "ShardCount": "2"},
        ),
        (
            ["Architecture=x86_64", ["ShardCount=2", "Architecture=arm64"]],
            {"Architecture": "arm64", "ShardCount": "2"},
        ),
        (
            {"Architecture": "arm64", "ShardCount": 2, "Ids": ["a", "b"]},
            {"Architecture": "arm64", "ShardCount": "2", "Ids": "a,b"},
        ),
        ("", {}),
    ],
)
def test_parameter_overrides_forms_parse_as_the_sam_cli_parses_them(
    value: Any, expected: dict[str, str]
) -> None:
    assert parse_parameter_overrides(value) == expected
    assert dict(CfnParameterOverridesType().convert(value, None, None)) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("file://params.json", "points to a file"),
        ('Architecture="arm64', "No closing quotation"),
        ("Architecture", "is not Key=Value"),
        ("ParameterKey=Architecture,ParameterValue=arm64 ShardCount=2", "mixes"),
        (3, "neither a string nor a table"),
    ],
)
def test_overrides_the_check_cannot_read_are_refused(value: Any, message: str) -> None:
    with pytest.raises(SamconfigError, match=message):
        parse_parameter_overrides(value)


def test_unreadable_files_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = write(tmp_path, "[default.global.parameters\n")
    assert main(["--config-file", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err

    bad = write(tmp_path, '[default.deploy.parameters]\nparameter_overrides = "Architecture"\n')
    assert main(["--config-file", str(bad)]) == 2
    assert "[default.deploy.parameters] parameter_overrides" in capsys.readouterr().err
