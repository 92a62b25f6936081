"""`planning.Progress`: the one record of where iteration stands, without a dataset."""

from __future__ import annotations

import numpy as np
import pytest

from keras_roi_datagen.planning import Position, Progress, plan_epoch


def plan(epoch=0, start=0, rows=10, batch_size=3, shard=(0, 1)):
    return plan_epoch(rows, batch_size, seed=7, epoch=epoch, start=start, shard=shard)


def test_a_pass_counts_its_batches_into_the_position():
    progress = Progress()
    info = progress.start_pass(plan())
    assert (info.number, info.start, info.steps) == (1, Position(0, 0), 4)
    progress.serve(info, 2)
    assert progress.position == Position(0, 6) and progress.origin == Position(0, 0)
    progress.serve(info, 4)
    assert progress.position == Position(1, 0)  # served out: the next epoch, before Keras says so


def test_a_served_out_pass_ends_the_epoch():
    progress = Progress()
    info = progress.start_pass(plan())
    progress.serve(info, 4)
    progress.end_epoch(4, progress.take_reset())
    assert progress.current is None and progress.position == Position(1, 0)
    assert progress.completed_epoch == 0


def test_a_pass_keras_reset_is_discarded_and_starts_again_where_it_stood():
    progress = Progress(Position(2, 3))
    info = progress.start_pass(plan(2, 3))
    progress.serve(info, 4)  # even a peek that read the whole epoch does not end it
    progress.note_reset()
    progress.end_epoch(4, progress.take_reset())
    assert progress.current is None and progress.position == Position(2, 3)
    assert progress.completed_epoch is None and not progress.reset_seen


def test_a_reset_before_a_pass_starts_does_not_count():
    progress = Progress()
    progress.note_reset()
    info = progress.start_pass(plan())
    progress.serve(info, 1)
    progress.end_epoch(4, progress.take_reset())
    assert progress.current is info  # cut short (steps_per_epoch): kept open
    assert progress.position == Position(0, 3)
    again = progress.start_pass(plan(0, 3))
    assert (again.number, again.start, again.steps) == (2, Position(0, 3), 3)


def test_fetching_every_batch_completes_the_epoch():
    progress = Progress()
    for step in (2, 0, 3):
        progress.fetch(step)
    progress.end_epoch(4)
    assert progress.position == Position(0, 0)
    progress.fetch(1)
    progress.end_epoch(4)
    assert progress.position == Position(1, 0) and progress.completed_epoch == 0
    assert progress.fetched == set()


def test_moving_forgets_the_pass_and_the_fetched_batches_but_not_the_counts():
    progress = Progress()
    progress.start_pass(plan())
    progress.fetch(0)
    progress.move_to(Position(5, 0))
    assert progress.current is None and progress.fetched == set()
    assert progress.position == Position(5, 0)
    assert progress.start_pass(plan(5)).number == 2


def test_a_pass_no_longer_open_counts_nothing():
    progress = Progress()
    stale = progress.start_pass(plan())
    progress.move_to(Position(0, 0))
    progress.serve(stale, 3)
    assert progress.position == Position(0, 0)


@pytest.mark.parametrize("hosts", [1, 2, 3])
def test_the_position_after_n_steps_means_the_same_on_any_number_of_hosts(hosts):
    whole = plan(rows=12, batch_size=2, shard=(0, hosts))
    assert whole.position_after(1) == Position(0, 2 * hosts)
    assert whole.position_after(len(whole)) == Position(1, 0)
    assert whole.first_step == 0 and whole.epoch_steps == len(whole)
    resumed = plan(rows=12, batch_size=2, start=5, shard=(0, hosts))
    assert resumed.first_step == 5 // (2 * hosts) and resumed.epoch_steps == len(whole)


def test_predictions_come_back_in_table_order_without_the_padding():
    hosts = [plan(rows=7, batch_size=2, shard=(i, 2)) for i in range(2)]
    rows = []
    for part in hosts:
        served = np.concatenate([part.batch(i).rows for i in range(len(part))])
        got, (values,) = part.in_table_order((served * 10,))
        assert np.all(np.diff(got) > 0) and values.tolist() == (got * 10).tolist()
        rows.extend(got.tolist())
    assert sorted(rows) == list(range(7))
    with pytest.raises(ValueError, match="Predict over one whole epoch"):
        hosts[0].in_table_order(np.zeros(3))
