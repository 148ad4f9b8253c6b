"""template.yaml is clean for cfn-lint, `sam validate --lint` and checkov (the tools that gate a deploy)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support.template_checks import (
    CHECKOV,
    REGION,
    ROOT,
    TEMPLATE_PATH,
    VENV_BIN,
    offline_env,
    run,
)

# ---------------------------------------------------------------- the tools that gate a deploy


@pytest.mark.slow
def test_cfn_lint_reports_nothing() -> None:
    result = run([VENV_BIN / "cfn-lint", TEMPLATE_PATH], offline_env())

    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.slow
def test_sam_validate_lint_passes_offline() -> None:
    result = run(
        [VENV_BIN / "sam", "validate", "--lint", "--region", REGION, "-t", TEMPLATE_PATH],
        offline_env(),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def declared_checkov_skips(template: dict[str, Any]) -> dict[tuple[str, str], str]:
    skips = {}
    for logical_id, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            skips[(skip["id"], logical_id)] = skip.get("comment", "")
    return skips


def checkov(path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            str(CHECKOV),
            "-f",
            str(path),
            "--framework",
            "cloudformation",
            "--skip-download",
            "-o",
            "json",
        ],
        cwd=ROOT,
        env=offline_env(BC_SKIP_MAPPING="TRUE", CKV_SKIP_PACKAGE_UPDATE_CHECK="TRUE"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def checkov_report(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=120)
    assert stdout.strip(), stderr
    report = json.loads(stdout)
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 50  # it really scanned the stack
    return dict(report)


def failed_checks(report: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (c["check_id"], c["resource"].split(".")[-1])
        for c in report["results"].get("failed_checks", [])
    }


@pytest.mark.slow
def test_checkov_fails_no_check_and_every_skip_is_needed(
    template: dict[str, Any], tmp_path: Path
) -> None:
    if not CHECKOV.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHECKOV} is missing; `make test` creates it")
        pytest.skip("no .venv-checkov (run `make checkov-venv`)")
    # given: the template, and a copy without its skips
    unskipped = json.loads(json.dumps(template))
    for resource in unskipped["Resources"].values():
        resource.get("Metadata", {}).pop("checkov", None)
    unskipped_path = tmp_path / "template-without-skips.json"
    unskipped_path.write_text(json.dumps(unskipped))

    # when
    runs = checkov(TEMPLATE_PATH), checkov(unskipped_path)
    report, unskipped_report = (checkov_report(run) for run in runs)

    # then: nothing fails, and each skip hides a check that would fail without it
    failures = sorted(failed_checks(report))
    assert report["summary"]["failed"] == 0, f"checkov failed: {failures}"
    assert failed_checks(unskipped_report) == set(declared_checkov_skips(template))


def test_every_checkov_skip_gives_its_reason(template: dict[str, Any]) -> None:
    short = {
        key: reason for key, reason in declared_checkov_skips(template).items() if len(reason) < 40
    }

    assert short == {}
