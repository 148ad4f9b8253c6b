"""Check that `sam build` and `sam deploy` resolve the template parameters that change the build alike.

`make build` runs it first (`python -m embedded.samconfig`). It reads samconfig.toml the way the
SAM CLI does for each command and refuses when, say, `Architecture` would be x86_64 for the build
and arm64 for the deploy: the functions would then load native code built for the other
instruction set and fail at every cold start.

What the SAM CLI reads, from its documentation ("AWS SAM CLI configuration file", AWS SAM
Developer Guide):
- "To specify parameters for all commands, use the `global` keyword as the command in the table
  header (`[environment.global.parameters]`)."
- "Entries that you provide in a specific command table take precedence over entries in a
  `global` command section." (Key by key: a `parameter_overrides` in [default.deploy.parameters]
  replaces the global one whole for `sam deploy`, it is not merged with it.)
- "If you respond Y to this prompt [of `sam deploy --guided`], the AWS SAM CLI updates the
  configuration file with values for the `deploy` command. For example, for the `default`
  environment, AWS SAM updates the `[default.deploy.parameters]` table." - `parameter_overrides`
  is one of the entries it writes.
- "For the `parameter_overrides` entry, both the parameter values that you provide on the command
  line and entries in the configuration file take precedence over corresponding objects declared
  in the `Parameters` section of the template file."
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedded.template import Template, load_template

# Like the SAM CLI's, relative to the directory it runs in (make runs it in the repository root).
DEFAULT_CONFIG_FILE = Path("samconfig.toml")
DEFAULT_TEMPLATE = Path("template.yaml")
DEFAULT_ENV = "default"
GLOBAL_COMMAND = "global"

# What `sam build` reads of a function or a layer (and of Globals): a template parameter referenced
# there, or in the resource's Metadata (BuildMethod, BuildArchitecture, ...), changes what is built.
_BUILD_PROPERTIES = {
    "AWS::Serverless::Function": (
        "Architectures",
        "Runtime",
        "CodeUri",
        "Handler",
        "PackageType",
        "ImageUri",
    ),
    "AWS::Serverless::LayerVersion": (
        "ContentUri",
        "CompatibleRuntimes",
        "CompatibleArchitectures",
    ),
}
_GLOBALS_SECTIONS = {
    "Function": "AWS::Serverless::Function",
    "LayerVersion": "AWS::Serverless::LayerVersion",
}
_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")
_PARAMETER_KEY_FORM = re.compile(r"ParameterKey=([^,]+),ParameterValue=(.*)", re.DOTALL)


class SamconfigError(Exception):
    """samconfig.toml, or its parameter_overrides, cannot be read as the SAM CLI reads them."""


@dataclass(frozen=True)
class CommandOverrides:
    """The template parameter overrides one command resolves, and the table they come from."""

    command: str
    overrides: dict[str, str]
    table: str | None  # e.g. "[default.global.parameters]"; None when no table sets any


@dataclass(frozen=True)
class Mismatch:
    parameter: str
    build_value: str | None
    build_source: str
    deploy_value: str | None
    deploy_source: str


def load_config(path: Path) -> dict[str, Any]:
    """samconfig.toml as a dict; {} when there is none (the SAM CLI then uses no file either)."""
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise SamconfigError(f"{path} is not valid TOML: {error}") from None


def _table(config: Mapping[str, Any], env: str, command: str) -> Mapping[str, Any]:
    table = config.get(env, {})
    table = table.get(command, {}) if isinstance(table, Mapping) else {}
    table = table.get("parameters", {}) if isinstance(table, Mapping) else {}
    return table if isinstance(table, Mapping) else {}


def command_entries(
    config: Mapping[str, Any], command: str, env: str = DEFAULT_ENV
) -> dict[str, Any]:
    """The entries `sam COMMAND` reads: the global table's, each replaced by the command table's."""
    return {**_table(config, env, GLOBAL_COMMAND), **_table(config, env, command)}


def parse_parameter_overrides(value: Any) -> dict[str, str]:
    """parameter_overrides as the SAM CLI takes it: "K=V K2=V2" (values may be quoted), the
    "ParameterKey=K,ParameterValue=V" form, a list of such strings, or a table of values."""
    parameters: dict[str, str] = {}
    for item in _flatten(value):
        if isinstance(item, str):
            parameters.update(_parse_override_string(item))
        elif isinstance(item, Mapping):
            for key, entry in item.items():
                if isinstance(entry, list):
                    parameters[str(key)] = ",".join(
                        str(x).strip() for x in entry if x not in (None, "")
                    )
                else:
                    parameters[str(key)] = "" if entry is None else str(entry)
        else:
            raise SamconfigError(
                f"parameter_overrides entry {item!r} is neither a string nor a table"
            )
    return parameters


def _flatten(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [item for element in value for item in _flatten(element)]
    return [value]


def _parse_override_string(text: str) -> dict[str, str]:
    if text.strip().startswith("file://"):
        raise SamconfigError(
            f"parameter_overrides {text!r} points to a file, which this check does not read: "
            "write the parameters that change the build (Architecture) inline"
        )
    try:
        tokens = shlex.split(text)
    except ValueError as error:
        raise SamconfigError(f"parameter_overrides {text!r}: {error}") from None
    long_form = [_PARAMETER_KEY_FORM.fullmatch(token) for token in tokens]
    if any(long_form) and not all(long_form):
        raise SamconfigError(
            f"parameter_overrides {text!r} mixes 'ParameterKey=K,ParameterValue=V' with 'K=V'"
        )
    parameters: dict[str, str] = {}
    for token, match in zip(tokens, long_form, strict=True):
        if match is not None:
            parameters[match.group(1)] = match.group(2)
            continue
        key, separator, val = token.partition("=")
        if not separator or not key:
            raise SamconfigError(f"parameter_overrides {text!r}: {token!r} is not Key=Value")
        parameters[key] = val
    return parameters


def resolve_overrides(
    config: Mapping[str, Any], command: str, env: str = DEFAULT_ENV
) -> CommandOverrides:
    """The template parameter overrides `sam COMMAND` takes from the file, and their table."""
    for table_command in (command, GLOBAL_COMMAND):
        table = _table(config, env, table_command)
        if "parameter_overrides" in table:
            try:
                overrides = parse_parameter_overrides(table["parameter_overrides"])
            except SamconfigError as error:
                raise SamconfigError(f"[{env}.{table_command}.parameters] {error}") from None
            return CommandOverrides(command, overrides, f"[{env}.{table_command}.parameters]")
    return CommandOverrides(command, {}, None)


def build_parameter_names(template: Template) -> set[str]:
    """The template parameters referenced where `sam build` reads functions and layers."""
    declared = set(template.get("Parameters", {}))
    nodes: list[Any] = []
    for section, resource_type in _GLOBALS_SECTIONS.items():
        properties = template.get("Globals", {}).get(section, {})
        nodes += [properties.get(name) for name in _BUILD_PROPERTIES[resource_type]]
    for resource in template.get("Resources", {}).values():
        names = _BUILD_PROPERTIES.get(resource.get("Type", ""))
        if names is None:
            continue
        properties = resource.get("Properties", {})
        nodes += [properties.get(name) for name in names]
        nodes.append(resource.get("Metadata"))
    referenced: set[str] = set()
    for node in nodes:
        referenced |= _references(node)
    return referenced & declared


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) and value else value
                if isinstance(text, str):
                    found |= {name.strip() for name in _SUB_VARIABLE.findall(text)}
                if isinstance(value, list):
                    found |= _references(value[1:])
            else:
                found |= _references(value)
    elif isinstance(node, list):
        for item in node:
            found |= _references(item)
    return found


def compare(
    config: Mapping[str, Any], template: Template, env: str = DEFAULT_ENV
) -> tuple[dict[str, str | None], list[Mismatch]]:
    """The build parameters' values `sam build` and `sam deploy` agree on, and where they differ."""
    build = resolve_overrides(config, "build", env)
    deploy = resolve_overrides(config, "deploy", env)
    declared = template.get("Parameters", {})
    agreed: dict[str, str | None] = {}
    mismatches: list[Mismatch] = []
    for name in sorted(build_parameter_names(template)):
        default = declared[name].get("Default")
        default = None if default is None else str(default)
        build_value, build_source = _value(name, build, default)
        deploy_value, deploy_source = _value(name, deploy, default)
        if build_value == deploy_value:
            agreed[name] = build_value
        else:
            mismatches.append(
                Mismatch(name, build_value, build_source, deploy_value, deploy_source)
            )
    return agreed, mismatches


def _value(name: str, resolved: CommandOverrides, default: str | None) -> tuple[str | None, str]:
    if name in resolved.overrides:
        return resolved.overrides[name], f"parameter_overrides in {resolved.table}"
    return default, "template default"


def mismatch_report(mismatches: Sequence[Mismatch], config_file: Path, env: str) -> str:
    lines = [
        f"error: sam build and sam deploy would resolve {config_file.name} differently for "
        "template parameters that change the build:"
    ]
    lines += [
        f"  {m.parameter}: sam build {m.build_value} ({m.build_source}), "
        f"sam deploy {m.deploy_value} ({m.deploy_source})"
        for m in mismatches
    ]
    lines += [
        f"sam build reads only [{env}.build.parameters] and [{env}.global.parameters]; code built "
        "for one value fails under the other (native .so files of the wrong instruction set fail "
        "every cold start).",
        f"Fix: keep parameter_overrides in [{env}.global.parameters] only. `sam deploy --guided` "
        f"saves its answers in [{env}.deploy.parameters]: move that parameter_overrides line to "
        "the global table (replacing the one there) and delete it from the deploy table.",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m embedded.samconfig",
        description="Refuse (exit 1) when sam build and sam deploy would resolve samconfig.toml's "
        "template parameters that change the build (Architecture, ...) differently.",
    )
    parser.add_argument("--config-file", type=Path, default=DEFAULT_CONFIG_FILE)
    parser.add_argument("--config-env", default=DEFAULT_ENV)
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config_file)
        agreed, mismatches = compare(config, load_template(args.template), args.config_env)
    except SamconfigError as error:
        print(f"error: {args.config_file.name}: {error}", file=sys.stderr)
        return 2
    if mismatches:
        print(mismatch_report(mismatches, args.config_file, args.config_env), file=sys.stderr)
        return 1
    values = " ".join(f"{name}={value}" for name, value in agreed.items()) or "(none)"
    print(
        f"{args.config_file.name}: sam build and sam deploy agree on the build parameters: {values}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
