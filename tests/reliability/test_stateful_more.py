"""The second half of the stateful test's CI run: the same machine and invariants
(test_stateful.py), other histories (another seed), in its own file so that the suite's two
workers run the halves side by side. The soak profile (make soak) runs the first file only."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import seed

from tests.reliability import stateful_world as sw
from tests.reliability.test_stateful import RolloutWorld, run_histories


@seed(20261122)
class MoreHistories(RolloutWorld):
    pass


@pytest.mark.skipif(sw.SOAK, reason="the soak profile runs test_stateful.py, unseeded")
def test_other_histories_break_no_promise(tmp_path_factory: Any, capsys: Any) -> None:
    run_histories(MoreHistories, "stateful-second-half", tmp_path_factory, capsys)
