"""The registry's rules: manifests that catch any altered file, pointer changes that keep history."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given

from streamscore.core.registry import Pointer, RegistryError, check_files, manifest

FILES = {"model.onnx": b"onnx", "model_card.json": b"{}", "baseline.json": b"[]"}


def test_a_manifest_lists_every_file_with_its_size_and_hash() -> None:
    document = manifest("m-1", FILES | {"extra.bin": b"x"})

    assert document["model_version"] == "m-1"
    assert sorted(document["files"]) == [
        "baseline.json",
        "extra.bin",
        "model.onnx",
        "model_card.json",
    ]
    assert document["files"]["model.onnx"]["bytes"] == 4
    check_files(document, FILES | {"extra.bin": b"x"})


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({**FILES, "model.onnx": b"onnX"}, "model.onnx does not match its sha256"),
        ({**FILES, "model.onnx": b"onnx!"}, "model.onnx has 5 bytes, the manifest 4"),
        ({k: v for k, v in FILES.items() if k != "baseline.json"}, "baseline.json is missing"),
        ({**FILES, "other": b""}, "other not in the manifest"),
    ],
)
def test_any_altered_missing_or_extra_file_is_refused(files: dict[str, bytes], reason: str) -> None:
    with pytest.raises(RegistryError, match=reason):
        check_files(manifest("m-1", FILES), files)


@pytest.mark.parametrize("version", ["", "../x", "a/b", "-lead", "x" * 129])
def test_a_version_must_be_a_plain_name(version: str) -> None:
    with pytest.raises(RegistryError, match="is not a model version"):
        manifest(version, FILES)


def test_a_version_needs_model_card_and_baseline() -> None:
    with pytest.raises(RegistryError, match=r"lacks baseline\.json"):
        manifest("m-1", {"model.onnx": b"", "model_card.json": b""})


def test_promotion_and_rollback_keep_the_champions_in_order() -> None:
    # given: m1 champion, m2 challenger
    pointer = Pointer().with_champion("m1").with_challenger("m2")

    # when / then
    promoted = pointer.promoted()
    assert (promoted.champion, promoted.challenger, promoted.previous) == ("m2", None, ("m1",))
    back = promoted.rolled_back()
    assert (back.champion, back.challenger, back.previous) == ("m1", None, ())
    assert [p.revision for p in (pointer, promoted, back)] == [2, 3, 4]


def test_rolling_back_the_first_champion_returns_to_the_shipped_model() -> None:
    back = Pointer().with_champion("m1").rolled_back()

    assert (back.champion, back.previous, back.revision) == (None, (), 2)


def test_changes_that_make_no_sense_are_refused() -> None:
    with pytest.raises(RegistryError, match="no challenger to promote"):
        Pointer().with_champion("m1").promoted()
    with pytest.raises(RegistryError, match="no champion to roll back from"):
        Pointer().rolled_back()
    with pytest.raises(RegistryError, match="cannot be its own challenger"):
        Pointer().with_champion("m1").with_challenger("m1")
    with pytest.raises(RegistryError, match="is the champion already"):
        Pointer().with_champion("m1").with_champion("m1")


steps = st.tuples(
    st.sampled_from(["champion", "challenger", "promote", "rollback"]),
    st.sampled_from(["m1", "m2", "m3", "m4"]),
)


@given(st.lists(steps, max_size=30))
def test_a_pointer_never_names_one_version_twice_and_reads_back_as_stored(
    changes: list[tuple[str, str]],
) -> None:
    pointer = Pointer()
    for step, version in changes:
        try:
            if step == "champion":
                pointer = pointer.with_champion(version)
            elif step == "challenger":
                pointer = pointer.with_challenger(version)
            elif step == "promote":
                pointer = pointer.promoted()
            else:
                pointer = pointer.rolled_back()
        except RegistryError:
            continue
        assert pointer.champion is None or pointer.champion != pointer.challenger
        assert pointer.champion not in pointer.previous
        assert len(set(pointer.previous)) == len(pointer.previous)
        assert Pointer.from_item(pointer.to_item()) == pointer
