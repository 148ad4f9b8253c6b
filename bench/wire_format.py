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

import argparse
from typing import Any

from bench import ROOT
from bench.common import git_state, machine, now_iso, prepare_process, versions, write_json

RESULTS = ROOT / "bench" / "results" / "wire_format.json"


def measure(batches: int) -> dict[str, Any]:
    from bench.side_by_side import compare  # noqa: PLC0415
    from embedded.template import load_template  # noqa: PLC0415

    template = load_template(ROOT / "template.yaml")
    results: dict[str, Any] = {
        "date": now_iso(),
        "git": git_state(),
        "machine": machine(),
        "versions": versions(),
        "batches_per_size": batches,
    }

    def make(cls: Any, variant: str) -> Any:
        return cls(
            template, wire_format=variant != "botocore", user_agent_once=variant == "wire_ua"
        )

    def run(bench: Any) -> Any:
        return bench.handler

    variants = {"botocore": run, "wire": run, "wire_ua": run}
    results |= compare(template, make, variants, batches)
    results["machine"]["load_average_after"] = machine()["load_average"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=12, help="measured batches per size")
    args = parser.parse_args()
    prepare_process()
    results = measure(args.batches)
    write_json(RESULTS, results)
    for function in ("preprocess", "score"):
        for size, row in results[function].items():
            print(
                f"{function:10s} batch {size:>4}: "
                + "  ".join(
                    f"{name} {ratio['median']:.3f} [{ratio['min']:.2f}-{ratio['max']:.2f}]"
                    for name, ratio in row["ratios"].items()
                )
            )
    print(f"written: {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
