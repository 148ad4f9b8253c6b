"""What a handler module does last at init: freeze the objects init built (in Lambda only)."""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping


def freeze_after_init(environ: Mapping[str, str] = os.environ) -> bool:
    """Move every object made so far into the permanent generation, in Lambda only; True if done.

    The clients, pools, settings, model and modules init built live as long as the
    container, and every full collection of a warm invocation walks them again. gc.freeze
    (Python docs, gc module): "Freeze all the objects tracked by the garbage collector;
    move them to a permanent generation and ignore them in all the future collections."
    Measured side by side with the unfrozen handler in `make bench` (part 1c,
    bench/hot_path.py).

    Only in Lambda's managed runtime, which sets AWS_EXECUTION_ENV ("The runtime identifier,
    prefixed by AWS_Lambda_", Lambda Developer Guide, "Defined runtime environment
    variables"): tests, the local run and the benchmarks import handler modules many times
    in one process, where a freeze would keep alive every object dropped after it.
    """
    if not environ.get("AWS_EXECUTION_ENV", "").startswith("AWS_Lambda_"):
        return False
    gc.freeze()
    return True
