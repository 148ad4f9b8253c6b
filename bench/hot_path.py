"""The hot path's changes, each turned off alone, side by side with the handlers as they run.

`python -m bench.hot_path [--batches N]` writes bench/results/hot_path.json and prints it;
`make bench` runs it as part 1c with fewer batches.

Seven instances of each function run in one process, each on its own in-memory AWS
(bench/fake_aws.py, which answers at botocore's send step, so serialisation and parsing are
botocore's or ours as in Lambda), and every batch goes through all seven, the order rotating
(bench/side_by_side.py):

- `now`: the handler as deployed: DynamoDB and EventBridge requests and responses on the wire
  format path (streamscore.aws.wire), the User-Agent built once per client, items converted in
  one pass (streamscore.aws.dynamodb), what exists before the call frozen (gc.freeze, as
  streamscore.core.lambda_init does in Lambda);
- `botocore_shapes`: requests and responses walked through botocore's shapes again;
- `user_agent_per_call`: the User-Agent rebuilt for every request, as botocore does;
- `two_pass_items`: items converted in two passes, as before (floats to Decimals by
  core.items.to_item_value, then boto3's types; back the same way), swapped in around the
  call;
- `unfrozen`: no gc.freeze;
- `jmespath_context`: the table names DynamoDB's endpoint rules take from a batch or a
  transaction (ResourceArnList) found by botocore's JMESPath search again;
- `before`: all five at once: the handler as it was before this work.

The ratio of each variant to `now` is what the handler would cost without that change; its
inverse is the change's own ratio, measured with the others in place. CPU per record (process
time, all threads, the fake's answering taken out), medians with min-max.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from bench import ROOT
from bench.side_by_side import main as side_by_side_main
from bench.side_by_side import measure as side_by_side

RESULTS = ROOT / "bench" / "results" / "hot_path.json"

# name: (wire format, User-Agent once, one-pass items, frozen, context params without JMESPath)
VARIANTS = {
    "now": (True, True, True, True, True),
    "botocore_shapes": (False, True, True, True, True),
    "user_agent_per_call": (True, False, True, True, True),
    "two_pass_items": (True, True, False, True, True),
    "unfrozen": (True, True, True, False, True),
    "jmespath_context": (True, True, True, True, False),
    "before": (False, False, False, False, False),
}
FLAGS = ("wire_format", "user_agent_once", "one_pass_items", "frozen", "direct_context")
QUICK_BATCHES = 2  # make bench BENCH_ARGS=--quick
BENCH_BATCHES = 8  # make bench (part 1c)


@contextlib.contextmanager
def two_pass_items() -> Iterator[None]:
    """streamscore.aws.dynamodb's conversions replaced, for the call, by the two passes it made
    before: core.items' Decimal walk and boto3's TypeSerializer / TypeDeserializer (which the
    unit tests prove give the same items)."""
    from streamscore.aws import dynamodb  # noqa: PLC0415
    from streamscore.core.items import from_item_value, to_item_value  # noqa: PLC0415

    serializer, deserializer = TypeSerializer(), TypeDeserializer()

    def serialize_value(value: Any) -> dict[str, Any]:
        return serializer.serialize(to_item_value(value))  # type: ignore[return-value]

    def deserialize_value(value: Any) -> Any:
        return from_item_value(deserializer.deserialize(value))

    kept = dynamodb.serialize_value, dynamodb.deserialize_value
    dynamodb.serialize_value, dynamodb.deserialize_value = serialize_value, deserialize_value
    try:
        yield
    finally:
        dynamodb.serialize_value, dynamodb.deserialize_value = kept


def _runner(one_pass: bool) -> Callable[[Any], Callable[[dict[str, Any]], float]]:
    def run(bench: Any) -> Callable[[dict[str, Any]], float]:
        if one_pass:
            return bench.handler

        def handler(event: dict[str, Any]) -> float:
            with two_pass_items():
                return bench.handler(event)

        return handler

    return run


def measure(batches: int) -> dict[str, Any]:
    def make(template: Any, cls: Any, variant: str) -> Any:
        wire, agent_once, _, frozen, direct = VARIANTS[variant]
        bench = cls(template, wire_format=wire, user_agent_once=agent_once, direct_context=direct)
        bench.freeze = frozen
        return bench

    runners = {name: _runner(flags[2]) for name, flags in VARIANTS.items()}
    results = side_by_side(make, runners, batches)
    results["variants"] = {
        name: dict(zip(FLAGS, flags, strict=True)) for name, flags in VARIANTS.items()
    }
    return results


if __name__ == "__main__":
    side_by_side_main(__doc__.splitlines()[0], measure, RESULTS)
