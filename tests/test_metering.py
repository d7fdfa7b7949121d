"""Metering: deadline schedule, trapezoid energy, rounds aligned to the wall clock."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_energy.core.metering import LivePower, RoundMeter, RoundTotals, Schedule
from p2p_energy.sensors.base import Sample


def test_schedule_has_no_drift():
    s = Schedule(100.0, 0.1)
    for _ in range(10000):
        s.advance(s.deadline + 0.003)  # every tick 3 ms late
    assert s.deadline == pytest.approx(100.0 + 10000 * 0.1)


def test_schedule_counts_missed_deadlines_instead_of_shifting():
    s = Schedule(0.0, 1.0)
    assert s.advance(0.0) == 0 and s.deadline == 1.0
    assert s.advance(3.5) == 2  # deadlines 2 and 3 passed while we were busy
    assert s.deadline == 4.0


def feed(meter, samples):
    closed = []
    for t, c, p in samples:
        closed += meter.add(Sample(t, c, p))
    return closed


def test_constant_power_bills_power_times_elapsed_time():
    m = RoundMeter(1.0, 0.0, 1000.0, max_gap_s=10)
    closed = feed(m, [(i * 0.05, 50.0, 500.0) for i in range(101)])  # 0 .. 5 s
    assert len(closed) == 5
    for r in closed:
        assert r.duration_s == pytest.approx(1.0)
        assert r.consumer_mws == pytest.approx(50.0)
        assert r.producer_avg_mw == pytest.approx(500.0)
    assert closed[0].started_at == 1000.0 and closed[0].ended_at == pytest.approx(1001.0)


def test_segment_crossing_round_end_is_split_by_interpolation():
    m = RoundMeter(1.0, 0.0, 0.0, max_gap_s=10)
    closed = feed(m, [(0.0, 0.0, 0.0), (2.0, 200.0, 0.0)])  # ramp 0->200 mW over 2 s
    assert len(closed) == 2
    assert closed[0].consumer_mws == pytest.approx(50.0)  # area under 0..100 over 1 s
    assert closed[1].consumer_mws == pytest.approx(150.0)


def test_negative_production_counts_as_zero():
    m = RoundMeter(1.0, 0.0, 0.0, max_gap_s=10)
    closed = feed(m, [(0.0, 10.0, -40.0), (0.5, 10.0, -40.0), (1.0, 10.0, -40.0)])
    assert closed[0].producer_mws == 0.0 and closed[0].producer_avg_mw == 0.0


def test_failed_samples_are_counted_and_round_closes_on_time():
    m = RoundMeter(1.0, 0.0, 0.0, max_gap_s=10)
    m.add(Sample(0.0, 20.0, 100.0))
    m.expect()
    for t in (0.25, 0.5, 0.75, 1.0):
        closed = m.fail(t)
        m.expect()
    assert len(closed) == 1
    r = closed[0]
    assert r.failed_samples == 3 and r.samples == 1 and r.expected_samples == 4
    assert r.consumer_mws == pytest.approx(20.0)  # last reading held to the round's end


def test_long_gap_is_not_invented():
    m = RoundMeter(100.0, 0.0, 0.0, max_gap_s=5)
    feed(m, [(0.0, 10.0, 10.0), (1.0, 10.0, 10.0), (30.0, 10.0, 10.0), (31.0, 10.0, 10.0)])
    r = m.close_now(31.0)[-1]
    assert r.metered_s == pytest.approx(2.0) and r.consumer_mws == pytest.approx(20.0)
    assert r.duration_s == pytest.approx(31.0)


def test_close_now_is_pro_rata():
    m = RoundMeter(60.0, 0.0, 0.0, max_gap_s=10)
    feed(m, [(t, 30.0, 100.0) for t in range(0, 21)])
    (r,) = m.close_now(20.5)
    assert r.duration_s == pytest.approx(20.5) and r.consumer_mws == pytest.approx(615.0)


def test_resume_continues_the_checkpointed_round_to_its_slots_end():
    # Slot [8940, 9000): 40 s checkpointed, the daemon back at 8990, the round ends at 9000.
    saved = RoundTotals(started_at=8940.0, duration_s=40.0, metered_s=40.0,
                        consumer_mws=400.0, producer_mws=4000.0, samples=40, expected_samples=40)
    m = RoundMeter(60.0, 10.0, 8980.0, max_gap_s=10, resume=saved)
    closed = feed(m, [(10.0 + t, 10.0, 100.0) for t in range(0, 25)])
    assert len(closed) == 1
    r = closed[0]
    assert r.started_at == 8940.0 and r.ended_at == pytest.approx(9000.0)
    assert r.duration_s == pytest.approx(50.0)
    assert r.consumer_mws == pytest.approx(500.0) and r.samples == 50


def test_a_resumed_round_whose_slot_is_over_closes_at_once_as_it_was():
    saved = RoundTotals(started_at=5000.0, duration_s=40.0, metered_s=40.0,
                        consumer_mws=400.0, producer_mws=4000.0, samples=40, expected_samples=40)
    m = RoundMeter(60.0, 10.0, 9000.0, max_gap_s=10, resume=saved)
    first, second = feed(m, [(10.0 + t, 10.0, 100.0) for t in range(0, 62)])
    assert (first.started_at, first.duration_s, first.consumer_mws) == (5000.0, 40.0, 400.0)
    assert first.ended_at == 5040.0  # as saved: within its own slot
    assert second.started_at == 9010.0 and second.ended_at == pytest.approx(9060.0)


def test_a_checkpoint_holding_negative_production_resumes_as_none():
    # Saved by a version that integrated the panel channel's noise below zero.
    saved = RoundTotals(started_at=8940.0, duration_s=40.0, metered_s=40.0,
                        consumer_mws=400.0, producer_mws=-16.0, samples=40, expected_samples=40)
    m = RoundMeter(60.0, 10.0, 8980.0, max_gap_s=10, resume=saved)
    (r,) = feed(m, [(10.0 + t, 10.0, 0.0) for t in range(0, 25)])
    assert r.producer_mws == 0.0 and r.consumer_mws == pytest.approx(500.0)


def test_rounds_are_aligned_to_the_wall_clock_the_first_is_the_rest_of_its_slot():
    m = RoundMeter(60.0, 0.0, 1_796_515_237.5, max_gap_s=10)  # started at hh:mm:37.5
    closed = feed(m, [(t * 0.5, 10.0, 100.0) for t in range(0, 300)])
    assert closed[0].started_at == 1_796_515_237.5
    assert closed[0].ended_at == pytest.approx(1_796_515_260.0)
    assert closed[0].duration_s == pytest.approx(22.5)
    for r in closed[1:]:
        assert r.started_at % 60 == pytest.approx(0.0) and r.duration_s == pytest.approx(60.0)
        assert r.consumer_mws == pytest.approx(600.0)


def test_a_wall_clock_step_moves_the_slots_with_it():
    m = RoundMeter(10.0, 0.0, 1000.0, max_gap_s=10)  # slots end at 1010, 1020, ... wall
    feed(m, [(t, 1.0, 1.0) for t in range(0, 4)])
    assert m.follow_wall(4.0, 4.0 + 1000.0 + 3.5) == pytest.approx(3.5)  # now 1007.5
    closed = feed(m, [(t * 0.5, 1.0, 1.0) for t in range(8, 40)])
    # The open round closes at the step, in the time it began under; then new slots.
    assert [round(r.ended_at, 6) for r in closed] == [1004.0, 1010.0, 1020.0]
    assert [round(r.started_at, 6) for r in closed] == [1000.0, 1007.5, 1010.0]
    assert [round(r.duration_s, 6) for r in closed] == [4.0, 2.5, 10.0]
    assert sum(r.consumer_mws for r in closed) == pytest.approx(1.0 * 16.5)  # all, once


def test_snapshot_covers_time_up_to_last_sample():
    m = RoundMeter(60.0, 0.0, 0.0, max_gap_s=10)
    feed(m, [(t, 10.0, 100.0) for t in range(0, 11)])
    snap = m.snapshot()
    assert snap.duration_s == pytest.approx(10.0) and snap.consumer_mws == pytest.approx(100.0)


@given(st.lists(st.tuples(st.floats(0.001, 0.5), st.floats(0, 1000), st.floats(-50, 1000)),
                min_size=2, max_size=300),
       st.floats(0.2, 5.0))
def test_every_mws_lands_in_exactly_one_round(steps, length_s):
    """Whatever the sample timing, the rounds' energy sums to the whole integral."""
    m = RoundMeter(length_s, 0.0, 0.0, max_gap_s=1.0)
    t, pts = 0.0, []
    for dt, c, p in steps:
        pts.append((t, c, p))
        t += dt
    closed = feed(m, pts)
    closed += m.close_now(pts[-1][0])
    expected = sum((a[1] + b[1]) / 2 * (b[0] - a[0]) for a, b in itertools.pairwise(pts))
    assert sum(r.consumer_mws for r in closed) == pytest.approx(expected, rel=1e-9, abs=1e-6)
    assert sum(r.duration_s for r in closed) == pytest.approx(pts[-1][0], abs=1e-9)
    assert sum(r.samples for r in closed) == len(pts)


def test_an_out_of_range_channel_is_missing_for_that_channel_only():
    m = RoundMeter(100.0, 0.0, 0.0, max_gap_s=10)
    # The producer saturates from 3 s to 6 s (None); the consumer reads all along.
    feed(m, [(t, 50.0, None if 3 <= t <= 6 else 500.0) for t in range(0, 11)])
    (r,) = m.close_now(10.0)
    assert r.metered_s == pytest.approx(10.0) and r.samples == 11
    assert r.consumer_metered_s == pytest.approx(10.0)
    assert r.consumer_mws == pytest.approx(500.0)  # 50 mW x 10 s: nothing of it dropped
    # Not interpolated through the saturated stretch: metered 0-2 s and 7-10 s only.
    assert r.producer_metered_s == pytest.approx(5.0)
    assert r.producer_mws == pytest.approx(2500.0)
    assert r.producer_avg_mw == pytest.approx(500.0)  # over the producer's metered time


def test_a_round_ending_during_saturation_closes_with_what_was_in_range():
    m = RoundMeter(5.0, 0.0, 0.0, max_gap_s=10)
    closed = feed(m, [(t, 20.0, 100.0 if t < 4 else None) for t in range(0, 9)])
    (r,) = closed
    assert r.consumer_metered_s == pytest.approx(5.0) and r.consumer_mws == pytest.approx(100.0)
    assert r.producer_metered_s == pytest.approx(3.0) and r.producer_avg_mw == pytest.approx(100.0)
    (r2,) = m.close_now(8.0)
    assert r2.producer_metered_s == 0.0 and r2.producer_avg_mw == 0.0
    assert r2.consumer_metered_s == pytest.approx(3.0)


def test_checkpoint_and_resume_keep_each_channels_metered_time():
    m = RoundMeter(60.0, 0.0, 0.0, max_gap_s=10)
    feed(m, [(t, 10.0, None if t >= 5 else 100.0) for t in range(0, 11)])
    snap = m.snapshot()
    assert (snap.consumer_metered_s, snap.producer_metered_s) == (10.0, 4.0)
    resumed = RoundMeter(60.0, 100.0, -80.0, max_gap_s=10, resume=snap)  # wall 20: same slot
    feed(resumed, [(100.0 + t, 10.0, 100.0) for t in range(0, 3)])
    (r,) = resumed.close_now(102.0)
    assert r.consumer_metered_s == pytest.approx(12.0) and r.producer_metered_s == 6.0
    assert r.producer_mws == pytest.approx(600.0)


def test_totals_without_channel_times_take_the_metered_time():
    r = RoundTotals(started_at=0.0, metered_s=4.0, producer_mws=400.0)
    assert r.consumer_metered_s == r.producer_metered_s == 4.0 and r.producer_avg_mw == 100.0


def test_round_timestamps_follow_a_wall_clock_step_but_not_slewing():
    stale = 1.6e9  # the time of the last shutdown, on a Pi without a real-time clock
    m = RoundMeter(10.0, 0.0, stale, max_gap_s=10)
    feed(m, [(t, 10.0, 100.0) for t in range(0, 4)])
    assert m.follow_wall(3.0, 3.0 + stale + 0.5) == 0.0  # slewing-sized: ignored
    assert m.follow_wall(4.0, 4.0 + stale + 3600.0) == pytest.approx(3600.0)  # NTP steps
    assert m.follow_wall(5.0, 5.0 + stale + 3600.0) == 0.0  # logged once per step
    closed = feed(m, [(t, 10.0, 100.0) for t in range(4, 21)])
    # The round open at the step closes there, in the time it began under; then the new
    # time's slots.
    assert [r.started_at for r in closed] == [stale, stale + 3604.0, stale + 3610.0]
    assert [r.ended_at for r in closed] == [stale + 4.0, stale + 3610.0, stale + 3620.0]
    assert [r.duration_s for r in closed] == [4.0, 6.0, 10.0]  # metering stays monotonic
    assert sum(r.consumer_mws for r in closed) == pytest.approx(200.0)


def test_a_resumed_round_closes_at_a_step_within_its_slot():
    saved = RoundTotals(started_at=100.0, duration_s=4.0, metered_s=4.0)  # slot [100, 110)
    m = RoundMeter(10.0, 0.0, 104.0, max_gap_s=10, resume=saved)
    m.follow_wall(1.0, 1.0 + 104.0 + 2.0)  # a 2 s step: now 107 on the wall
    resumed, after = feed(m, [(t * 0.5, 1.0, 1.0) for t in range(0, 12)])[:2]
    assert (resumed.started_at, resumed.ended_at, resumed.duration_s) == (100.0, 105.0, 5.0)
    assert after.started_at == 107.0 and after.ended_at == pytest.approx(110.0)


def test_a_clock_behind_the_checkpoint_closes_the_resumed_round_as_it_was():
    """A Pi without a real-time clock boots with a time before its last checkpoint."""
    saved = RoundTotals(started_at=1_800_000_030.0, duration_s=15.0, metered_s=15.0,
                        consumer_mws=45.0)
    m = RoundMeter(60.0, 0.0, 1_799_990_000.0, max_gap_s=10, resume=saved)
    first = feed(m, [(t, 1.0, 1.0) for t in range(0, 3)])[0]
    assert (first.started_at, first.ended_at) == (1_800_000_030.0, 1_800_000_045.0)
    assert first.consumer_mws == 45.0 and first.ended_at > first.started_at


def test_no_live_power_while_a_channel_is_out_of_range():
    m = RoundMeter(60.0, 0.0, 1000.0, max_gap_s=10)
    feed(m, [(0.0, 10.0, -5.0), (1.0, 12.0, 200.0)])
    assert m.latest(1.5, 5.0) == LivePower(12.0, 200.0, 1001.0)
    feed(m, [(2.0, 13.0, None)])  # the producer saturates: its last value is no longer true
    assert m.latest(2.5, 5.0) is None
    feed(m, [(3.0, 14.0, -1.0)])
    assert m.latest(3.5, 5.0) == LivePower(14.0, 0.0, 1003.0)


def test_a_producers_live_power_needs_no_consumer_reading():
    m = RoundMeter(60.0, 0.0, 1000.0, max_gap_s=10)
    feed(m, [(0.0, None, 300.0), (1.0, None, 320.0)])
    assert m.latest(1.5, 5.0) is None  # a consumer's meter: both or nothing
    assert m.latest(1.5, 5.0, producer_only=True) == LivePower(0.0, 320.0, 1001.0)
    assert m.latest(9.0, 5.0, producer_only=True) is None  # too old
