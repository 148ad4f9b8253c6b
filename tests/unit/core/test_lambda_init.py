"""freeze_after_init: the objects init built leave the collector's work, in Lambda only."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from streamscore.core.lambda_init import freeze_after_init


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process must not keep what it dropped


def test_in_lambdas_managed_runtime_every_object_so_far_is_frozen() -> None:
    # given: objects made at "init"
    built_at_init = [object() for _ in range(100)]

    # when
    frozen = freeze_after_init({"AWS_EXECUTION_ENV": "AWS_Lambda_python3.13"})

    # then: they are in the permanent generation, out of every later collection
    assert frozen is True
    assert gc.get_freeze_count() >= len(built_at_init)


@pytest.mark.parametrize(
    "environ",
    [{}, {"AWS_LAMBDA_FUNCTION_NAME": "streamscore-local"}, {"AWS_EXECUTION_ENV": "local"}],
    ids=["no runtime", "the local run's containers", "another execution environment"],
)
def test_outside_lambda_nothing_is_frozen(environ: dict[str, str]) -> None:
    # when
    frozen = freeze_after_init(environ)

    # then
    assert frozen is False
    assert gc.get_freeze_count() == 0
