"""Selecting traces for a dataset, and saying which filter left none."""

from __future__ import annotations

import pytest

from trainer.data.select import EmptySelection, Selection


def test_selection_filters_and_orders_best_first(captured_store):
    selection = Selection(outcome="success", min_rating=4)
    runs = list(selection.runs(captured_store))
    assert [run.trace["rating"] for run in runs] == [5, 5, 5, 4, 4]
    assert selection.check(captured_store) == 5
    assert Selection(max_traces=2).count(captured_store) == 2
    assert len(list(Selection(name="claude-*").runs(captured_store))) == 1
    assert len(list(Selection(tags=["test"], outcome="failure").runs(captured_store))) == 1


def test_an_empty_selection_names_the_filter_that_emptied_it(captured_store):
    with pytest.raises(EmptySelection) as caught:
        Selection(outcome="success", min_rating=4.5, name="orders-agent", model="gpt-nope").check(captured_store)
    assert str(caught.value) == (
        "no trace matches the selection: 8 traces in the store; 6 with outcome 'success'; "
        "3 of those rated at least 4.5; 2 of those named 'orders-agent'; "
        "0 of those calling model 'gpt-nope'"
    )


def test_a_selection_can_be_a_search(captured_store):
    everything = Selection().count(captured_store)
    assert 0 < Selection(text="shipped").count(captured_store) < everything
    with pytest.raises(EmptySelection) as caught:
        Selection(outcome="success", text="zebra crossing").check(captured_store)
    assert str(caught.value).endswith("0 of those with calls saying 'zebra crossing'")
