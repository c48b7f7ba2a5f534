"""The simulator's CPU meter counts the firmware's work and nothing else."""

import pytest

from firmware.sim.cpu import CpuMeter, _meter_costs
from firmware.sim.rig import SimRoller


class FakeCpu:
    """A thread CPU clock that moves only with work done; each read costs ``read_s``,
    half before the value is taken and half after (as a system call does)."""

    def __init__(self, read_s=0.0):
        self.t = 0.0
        self.read_s = read_s

    def __call__(self):
        self.t += self.read_s / 2
        value = self.t
        self.t += self.read_s / 2
        return value

    def work(self, seconds):
        self.t += seconds


def test_firmware_time_excludes_emulation_observers_and_the_meters_own_cost():
    cpu = FakeCpu(read_s=1e-6)
    meter = CpuMeter(cpu, costs=_meter_costs(cpu), cpu_clock=None)
    assert meter.costs == pytest.approx((1e-6, 1e-6), abs=1e-12)

    @meter.emulated
    def device(data):
        cpu.work(5e-6)  # the emulated part and the physics behind it

    @meter.outside
    def observer(frame):
        cpu.work(3e-6)  # the bench's recorder

    @meter.firmware
    def step():
        cpu.work(2e-6)
        for _ in range(3):
            device(b"")
        observer(None)
        cpu.work(1e-6)

    for _ in range(10):
        step()
    assert meter.firmware_s == pytest.approx(10 * 3e-6, abs=1e-12)
    assert meter.emulated_s == pytest.approx(10 * 3 * (5e-6 + 1e-6), abs=1e-12)
    assert meter.crossings == {"firmware": 40} and meter.entries == {"firmware": 10}


def test_nested_regions_and_parts_add_up():
    cpu = FakeCpu(read_s=2e-6)
    meter = CpuMeter(cpu, costs=_meter_costs(cpu), cpu_clock=None)

    @meter.emulated
    def pin_read():
        cpu.work(1e-6)
        return callback()   # an edge event runs firmware code from inside the mock pin

    @meter.firmware
    def callback():
        cpu.work(4e-6)

    def scanner():
        cpu.work(2e-6)
        pin_read()

    scanner = meter.firmware(scanner, "scanner")
    loop = meter.firmware(lambda: (cpu.work(1e-6), scanner()), "loop")
    loop()
    parts = meter.parts()
    assert parts["loop"] == pytest.approx(1e-6, abs=1e-12)
    assert parts["scanner"] == pytest.approx(2e-6, abs=1e-12)
    assert parts["firmware"] == pytest.approx(4e-6, abs=1e-12)
    assert meter.firmware_s == pytest.approx(sum(parts.values()))


def test_time_another_process_took_is_shared_out_by_the_buckets_lengths():
    wall = FakeCpu()
    cpu = FakeCpu()
    meter = CpuMeter(wall, costs=(0.0, 0.0), cpu_clock=cpu)

    def work(seconds):
        wall.work(seconds)
        cpu.work(seconds)

    @meter.emulated
    def device():
        work(6e-6)
        wall.work(10e-6)   # preempted here: wall time passes, this thread's CPU time not

    step = meter.firmware(lambda: (work(2e-6), device(), work(2e-6)))
    step()
    assert meter.preempted == 1
    assert meter.firmware_s == pytest.approx(4e-6 * 10 / 20, abs=1e-12)  # 4 of 20 us wall
    assert meter.emulated_s == pytest.approx(16e-6 * 10 / 20, abs=1e-12)
    step = meter.firmware(lambda: work(3e-6))
    step()                 # not preempted: counted as it is
    assert meter.preempted == 1 and meter.firmware_s == pytest.approx(5e-6, abs=1e-12)


def test_the_calibration_of_the_real_clock_is_positive_and_small():
    crossing_s, entry_s = _meter_costs(CpuMeter().clock)
    assert 0 < crossing_s < 20e-6 and 0 < entry_s < 20e-6


def test_a_profiled_roller_meters_every_part_in_situ_and_in_the_replay():
    roller = SimRoller(seed=3, profile=True)
    roller.run(until=2.0)
    roller.close()
    names = {"adc scanner", "imu drain", "odometry + frames", "zone loads", "fence", "loop",
             "boot"}
    for meter in (roller.meter, roller.cpu.meter):
        parts = meter.parts()
        assert names <= set(parts)
        assert all(s > 0 for name, s in parts.items() if name in names)
    assert roller.meter.firmware_s == pytest.approx(sum(roller.meter.parts().values()))
    assert roller.meter.emulated_s > roller.meter.firmware_s  # the physics dominates
    assert roller.cpu.diverged is None and roller.firmware_seconds == roller.cpu.seconds
    assert roller.cpu_by_replay


def test_the_replay_does_the_simulated_firmwares_work_again_exactly():
    roller = SimRoller(seed=4)
    frames, again = [], []
    roller.add_sink(frames.append)
    roller.REPLAY_ITEMS = 3000   # several replays along the way
    roller.run(until=4.0)
    replayed = roller.cpu.firmware
    replayed.frame_sinks.append(again.append)
    roller.run(until=8.0)
    roller.close()
    assert roller.cpu.diverged is None and len(roller.tape) == 0
    assert again == frames[-len(again):] and len(again) > 300  # the same frames, bit for bit
    assert replayed.scanner.scans == roller.firmware.scanner.scans
    assert 0 < roller.firmware_seconds < roller.meter.firmware_s + roller.meter.emulated_s


def test_firmware_driven_from_outside_the_loop_stops_the_replay_not_the_roller():
    roller = SimRoller(seed=4)
    roller.run(until=1.0)
    roller.firmware.haptic.play("ack", roller.clock.now())   # as a Bluetooth command would
    roller.run(until=2.0)
    assert roller.firmware_seconds == roller.meter.firmware_s  # the in-situ figure, then
    assert roller.cpu.diverged is not None and not roller.cpu_by_replay
    assert len(roller.tape) == 0 and not roller.tape.recording
    roller.close()


def test_the_bench_says_when_its_firmware_cpu_is_not_by_replay(monkeypatch, caplog):
    from firmware.sim import rig
    from firmware.sim.scenario import default_scenario
    from host.bench.suite import firmware_cpu

    ms, by_replay = firmware_cpu(default_scenario(), 4, 1.0)
    assert by_replay and ms > 0 and not caplog.records

    class Poked(rig.SimRoller):
        def run(self, until: float) -> None:
            super().run(until=until / 2)
            self.firmware.haptic.play("ack", self.clock.now())   # outside the tape
            super().run(until=until)

    monkeypatch.setattr(rig, "SimRoller", Poked)
    ms, by_replay = firmware_cpu(default_scenario(), 4, 1.0)
    assert not by_replay and ms > 0
    assert "not by replay" in caplog.text


def test_real_time_runs_keep_the_in_situ_meter_only():
    paced = SimRoller(seed=4, speed=50.0)
    paced.run(until=0.5)
    assert len(paced.tape) == 0 and paced.firmware_seconds == paced.meter.firmware_s > 0
    paced.close()
    off = SimRoller(seed=4, replay=False)
    off.run(until=0.5)
    assert off.cpu.firmware is None and off.firmware_seconds == off.meter.firmware_s > 0
    off.close()
