"""The stand-in sensors: simulated day and CSV replay."""

import pytest

from p2p_energy.errors import ConfigError
from p2p_energy.sensors.replay import ReplaySensor
from p2p_energy.sensors.simulated import SimulatedSensor


def test_simulated_day_is_deterministic_with_sun_then_night():
    a, b = SimulatedSensor(day_s=100.0, start_phase=0.0), SimulatedSensor(day_s=100.0,
                                                                          start_phase=0.0)
    a.open()
    b.open()
    xs = [1000.0 + i for i in range(100)]
    assert [a.read(t) for t in xs] == [b.read(t) for t in xs]
    produced = [a.producer_mw(x) for x in range(100)]
    assert max(produced[:50]) > 700 and all(p == 0.0 for p in produced[50:])
    assert produced[25] > produced[5]  # noon beats morning
    loads = [a.consumer_mw(x) for x in range(100)]
    assert min(loads) > 0 and max(loads) - min(loads) > 20  # the load varies


def test_simulated_sensor_starts_in_the_morning_by_default():
    s = SimulatedSensor()
    s.open()
    first = s.read(50.0)
    assert first.t == 50.0 and 100 < first.producer_mw < 800


def write(tmp_path, text):
    p = tmp_path / "trace.csv"
    p.write_text(text)
    return str(p)


def test_replay_interpolates_and_starts_over(tmp_path):
    s = ReplaySensor(write(tmp_path, "t_s,consumer_mw,producer_mw\n0,0,100\n10,100,0\n"))
    s.open()
    assert s.read(500.0).consumer_mw == 0.0  # the first read is the trace's t = 0
    mid = s.read(502.5)
    assert mid.consumer_mw == pytest.approx(25.0) and mid.producer_mw == pytest.approx(75.0)
    again = s.read(512.5)  # 12.5 s in: 2.5 s into the second pass
    assert again.consumer_mw == pytest.approx(25.0)


def test_replay_of_a_single_row_is_constant(tmp_path):
    s = ReplaySensor(write(tmp_path, "t_s,consumer_mw,producer_mw\n0,50,500\n"))
    s.open()
    assert [s.read(t).consumer_mw for t in (0.0, 3.0, 99.0)] == [50.0, 50.0, 50.0]


@pytest.mark.parametrize("text, says", [
    ("time,c,p\n0,1,2\n", "header"),
    ("t_s,consumer_mw,producer_mw\n0,1,x\n", "line 2"),
    ("t_s,consumer_mw,producer_mw\n1,1,1\n", "start at 0"),
    ("t_s,consumer_mw,producer_mw\n0,1,1\n5,1,1\n5,1,1\n", "increase"),
    ("t_s,consumer_mw,producer_mw\n", "no rows"),
])
def test_bad_traces_are_config_errors_naming_the_key(tmp_path, text, says):
    with pytest.raises(ConfigError, match=says) as err:
        ReplaySensor(write(tmp_path, text), "cfg.toml")
    assert "cfg.toml" in str(err.value) and "meter.replay_file" in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_trace_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read trace"):
        ReplaySensor(str(tmp_path / "nope.csv"))
