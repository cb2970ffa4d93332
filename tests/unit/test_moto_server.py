"""The local cloud's patches to moto keep its answers: here, a Kinesis shard's first and last sequence numbers."""

from __future__ import annotations

import pytest
from moto.kinesis.models import Shard

from closecast_tools.local.moto_server import constant_time_sequence_numbers

pytestmark = pytest.mark.unit


def test_a_shards_first_and_last_sequence_numbers_are_the_ones_moto_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given shards empty and holding records, when the first and last sequence numbers are read in constant
    time, then they are the numbers moto's own methods give (0 for an empty shard), and records put afterwards
    go on from the last."""
    for name in ("get_min_sequence_number", "get_max_sequence_number"):
        monkeypatch.setattr(Shard, name, getattr(Shard, name))  # put back after the test
    moto_first, moto_last = Shard.get_min_sequence_number, Shard.get_max_sequence_number
    empty, full = Shard(0, 0, 2**128), Shard(1, 0, 2**128)
    for n in range(5):
        full.put_record(f"k{n}", "ZGF0YQ==", None)  # type: ignore[arg-type]
    expected = [(moto_first(s), moto_last(s)) for s in (empty, full)]

    constant_time_sequence_numbers()

    assert [(s.get_min_sequence_number(), s.get_max_sequence_number()) for s in (empty, full)] == expected
    assert expected == [(0, 0), (1, 5)]
    assert full.put_record("k", "ZGF0YQ==", None) == "6"  # type: ignore[arg-type]
