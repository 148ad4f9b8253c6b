"""The wire-format path and the kept User-Agent (streamscore.aws.wire) against botocore, side by side.

`python -m bench.wire_format [--batches N]` writes bench/results/wire_format.json and prints it.

Three instances of each function run in one process, each on its own in-memory AWS
(bench/fake_aws.py, which answers at botocore's send step, so serialisation and parsing are
botocore's or ours as in Lambda): `botocore`, clients made with `wire_format=False,
user_agent_once=False`, every DynamoDB and EventBridge request walked through its input shape,
every response through its output shape, the User-Agent built twice a request; `wire`, the
wire-format path only; `wire_ua`, both, as the functions run now. Each batch goes through all
three, the order rotating (bench/side_by_side.py). CPU per record, medians with min-max, and
the paired ratios to `botocore`.
"""

from __future__ import annotations

from typing import Any

from bench import ROOT
from bench.side_by_side import main as side_by_side_main
from bench.side_by_side import measure as side_by_side

RESULTS = ROOT / "bench" / "results" / "wire_format.json"


def measure(batches: int) -> dict[str, Any]:
    def make(template: Any, cls: Any, variant: str) -> Any:
        return cls(
            template, wire_format=variant != "botocore", user_agent_once=variant == "wire_ua"
        )

    def run(bench: Any) -> Any:
        return bench.handler

    return side_by_side(make, {"botocore": run, "wire": run, "wire_ua": run}, batches)


if __name__ == "__main__":
    side_by_side_main(__doc__.splitlines()[0], measure, RESULTS)
