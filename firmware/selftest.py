"""``smartroller-fw selftest``: check every part of the roller and name the one that is wrong.

Run it with the roller lying still and nobody on it, and the firmware service stopped
(``sudo systemctl stop smartroller-fw``: it holds the bus, the pins and the radio).
One line per check, in wiring order:

======  =====================================================================
i2c     the I2C bus opens (``/dev/i2c-N``), at 400 kHz where the Pi says so
imu     the MPU-6050 answers at its address; WHO_AM_I 0x68 (a clone: warning)
motion  the IMU delivers samples from its FIFO at the configured rate, a gravity
        vector of 1 g +- 0.15 g, and a gyro at rest (offset within the datasheet's
        +-20 deg/s, noise under 1 deg/s, not frozen)
adcN    ADS1115 number N answers and converts (single-shot completes)
zones   every zone reads within its range with no load: below the voltage of a
        quarter of the contact threshold, and not beyond the supply
alert   each ADS1115's ALERT/RDY pin, if the profile has them (``pins.adc_ready``):
        idle high, low once a conversion is ready (conversion-ready mode)
battery the MAX17048 fuel gauge answers at its address and reads a state of charge
        (low: a warning; a first estimate after a reset, which reads low under
        load: a warning); skipped when the profile has none (``battery.gauge``)
motor   the motor pin drives (a 0.3 s buzz: feel it)
button  the button pin reads released (pressed at rest: held or shorted)
led     the LED pin drives (one blink)
ble     the Bluetooth controller opens through Bumble (``hci-socket:0``) and powers on
calib   what the roller has learned of its parts (``calibration.json`` in its state
        directory: the gyro's scale, the IMU's clock); never fails, warns on a bad file
======  =====================================================================

``--sim`` runs the same checks on emulated parts at rest
(``firmware.sim.selftest_rig.BenchRig``), with faults to inject (``FAULTS`` there) so
that each failing part is named. Exit status: 0 every check
passed, 1 a part failed, 2 bad input.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firmware.calibration import FILE_NAME as CALIBRATION_FILE
from firmware.calibration import load_calibration
from firmware.clock import Clock
from firmware.config import Config
from firmware.drivers.ads1115 import OS_BIT, Ads1115, config_word, conversion_time_s
from firmware.drivers.mpu6050 import WHO_AM_I, WHO_AM_I_MPU6050, Mpu6050

__all__ = ["Check", "run_selftest", "summary"]

G_TOLERANCE = 0.15
"""Accepted deviation of the gravity vector's magnitude at rest, g (zero-g offsets of
up to +-80 mg per axis, plus the range's gain error)."""
GYRO_OFFSET_LIMIT_DPS = 25.0
"""Zero-rate offset accepted at rest, deg/s (datasheet: +-20 deg/s initial)."""
GYRO_NOISE_LIMIT_DPS = 1.0
"""Standard deviation accepted at rest, deg/s (datasheet noise ~0.05 deg/s at 44 Hz)."""
MOTION_SECONDS = 0.5
"""How long the IMU is sampled, s."""
BUZZ_S = 0.3
PI_I2C_CLOCK = Path("/sys/class/i2c-adapter/i2c-{bus}/of_node/clock-frequency")


@dataclass(frozen=True)
class Check:
    """One check's outcome: part, passed, one line of detail, warning (passed with a
    remark), skipped."""

    part: str
    ok: bool
    detail: str
    warning: bool = False
    skipped: bool = False

    def line(self) -> str:
        """``PASS  imu     WHO_AM_I 0x68 at 0x68`` (FAIL, WARN, SKIP)."""
        word = "SKIP" if self.skipped else "FAIL" if not self.ok else \
            "WARN" if self.warning else "PASS"
        return f"{word}  {self.part:7} {self.detail}"


def summary(checks: list[Check]) -> str:
    """One closing line: how many passed, which failed."""
    failed = [c.part for c in checks if not c.ok]
    passed = sum(1 for c in checks if c.ok and not c.skipped)
    if failed:
        return f"selftest: {len(failed)} part(s) failed: {', '.join(failed)} " \
               f"({passed} passed)"
    return f"selftest: all {passed} checks passed"


# --------------------------------------------------------------------------- the bench rig


# --------------------------------------------------------------------------- the checks


def _oserror_text(exc: OSError) -> str:
    if exc.errno in (errno.EREMOTEIO, errno.ENXIO, errno.EIO):
        return "no answer (NACK)"
    return exc.strerror or str(exc)


def check_bus(open_bus: Callable[[int], Any], config: Config, sim: bool
              ) -> tuple[Check, dict[int, Any]]:
    """The I2C bus(es) of the profile open."""
    buses: dict[int, Any] = {}
    for number in sorted({config.imu.bus, config.adc.bus}):
        try:
            buses[number] = open_bus(number)
        except (OSError, PermissionError) as exc:
            hint = ("enable I2C (dtparam=i2c_arm=on in /boot/firmware/config.txt) and reboot"
                    if isinstance(exc, FileNotFoundError) else
                    "add the user to the i2c group" if isinstance(exc, PermissionError)
                    else "")
            return Check("i2c", False, f"/dev/i2c-{number}: {exc.strerror or exc}"
                         f"{'; ' + hint if hint else ''}"), buses
    speed = "emulated at 400 kHz" if sim else _bus_speed(config.imu.bus)
    warn = not sim and "400 kHz" not in speed
    return Check("i2c", True, f"bus {', '.join(map(str, buses))} open ({speed})", warning=warn), \
        buses


def _bus_speed(bus: int) -> str:
    try:
        raw = Path(str(PI_I2C_CLOCK).format(bus=bus)).read_bytes()
    except OSError:
        return "clock unknown"
    hz = int.from_bytes(raw[:4], "big")
    if hz == 400_000:
        return "400 kHz"
    return f"{hz / 1000:g} kHz, not 400 kHz: set dtparam=i2c_arm_baudrate=400000"


def check_imu(bus: Any, config: Config) -> Check:
    """WHO_AM_I."""
    address = config.imu.address
    try:
        who = bus.read_byte_data(address, WHO_AM_I)
    except OSError as exc:
        return Check("imu", False, f"MPU-6050 at {address:#04x} on bus {config.imu.bus}: "
                     f"{_oserror_text(exc)}; check VCC, GND, SDA (pin 3), SCL (pin 5) and "
                     f"AD0 (low: 0x68, high: 0x69)")
    if who != WHO_AM_I_MPU6050:
        return Check("imu", True, f"WHO_AM_I {who:#04x}, not 0x68: a clone part, it works "
                     "but is unverified", warning=True)
    return Check("imu", True, f"MPU-6050 at {address:#04x}, WHO_AM_I 0x68")


def check_motion(bus: Any, config: Config, clock: Clock) -> Check:
    """Samples flow; gravity ~1 g; gyro at rest, not frozen."""
    quiet = logging.getLogger("smartroller.selftest.imu")
    quiet.propagate = False
    imu = Mpu6050(bus, config.imu, clock, quiet)
    try:
        imu.start()
    except OSError as exc:
        return Check("motion", False, f"cannot configure the IMU: {_oserror_text(exc)}")
    rows: list[np.ndarray] = []
    t_end = clock.now() + MOTION_SECONDS
    while clock.now() < t_end:
        clock.sleep_until(clock.now() + 0.02)
        batch = imu.drain()
        if batch is not None and len(batch.raw):
            rows.append(batch.raw)
    expected = MOTION_SECONDS * config.imu.sample_rate_hz
    if not rows:
        return Check("motion", False, f"no samples from the FIFO in {MOTION_SECONDS:g} s"
                     f"{': ' + imu.fault if imu.fault else ''} (IMU stuck or its clock stopped)")
    raw = np.concatenate(rows).astype(float)
    if len(raw) < 0.7 * expected:
        return Check("motion", False, f"{len(raw)} samples in {MOTION_SECONDS:g} s, expected "
                     f"~{expected:.0f}{': ' + imu.fault if imu.fault else ''}")
    accel_g = raw[:, :3] / imu.accel_lsb_per_g
    gyro = raw[:, 3:] / imu.gyro_lsb_per_dps
    g = float(np.linalg.norm(accel_g.mean(axis=0)))
    if np.all(raw.std(axis=0) == 0):
        return Check("motion", False, f"output frozen: {len(raw)} identical samples")
    if abs(g - 1.0) > G_TOLERANCE:
        return Check("motion", False, f"gravity reads {g:.2f} g, expected 1 g +- "
                     f"{G_TOLERANCE:g} (accelerometer faulty, or the roller is moving)")
    offset = float(np.abs(gyro.mean(axis=0)).max())
    noise = float(gyro.std(axis=0).max())
    if offset > GYRO_OFFSET_LIMIT_DPS or noise > GYRO_NOISE_LIMIT_DPS:
        return Check("motion", False, f"gyro at rest: offset {offset:.1f} deg/s, noise "
                     f"{noise:.2f} deg/s (limits {GYRO_OFFSET_LIMIT_DPS:g}, "
                     f"{GYRO_NOISE_LIMIT_DPS:g}): keep the roller still, or the gyro is faulty")
    return Check("motion", True, f"{len(raw)} samples, gravity {g:.3f} g, gyro offset "
                 f"{offset:.1f} deg/s, noise {noise:.2f} deg/s")


def _convert(adc: Ads1115, channel: int, config: Config, clock: Clock) -> int | None:
    """One single-shot conversion; the code, or None if it never completes."""
    adc.write_config(config_word(channel, config.adc.full_scale_v, config.adc.data_rate_sps))
    deadline = clock.now() + 5 * conversion_time_s(config.adc.data_rate_sps)
    while clock.now() < deadline:
        clock.sleep_until(clock.now() + conversion_time_s(config.adc.data_rate_sps) / 4)
        if adc.read_config() & OS_BIT:
            return adc.read_code()
    return None


def check_adcs(bus: Any, config: Config, clock: Clock) -> tuple[list[Check], list[float | None]]:
    """Each ADS1115 answers and converts; returns the zone voltages (None: not read)."""
    checks, volts = [], [None] * config.zones.count
    lsb = config.adc.full_scale_v / 32768.0
    for k, address in enumerate(config.adc.addresses):
        zones = list(range(4 * k, min(4 * k + 4, config.zones.count)))
        if not zones:
            continue
        adc = Ads1115(bus, address)
        name = f"adc{k + 1}"
        try:
            adc.read_config()
            codes = [_convert(adc, z - 4 * k, config, clock) for z in zones]
        except OSError as exc:
            checks.append(Check(name, False, f"ADS1115 at {address:#04x} (zones {zones[0] + 1}-"
                                f"{zones[-1] + 1}): {_oserror_text(exc)}; check its VDD, GND, "
                                "SDA, SCL and ADDR wiring"))
            continue
        if any(c is None for c in codes):
            checks.append(Check(name, False, f"ADS1115 at {address:#04x}: a conversion never "
                                "completes (the part is stuck or faulty)"))
            continue
        for z, code in zip(zones, codes, strict=True):
            volts[z] = code * lsb
        checks.append(Check(name, True, f"ADS1115 at {address:#04x} converts "
                            f"(zones {zones[0] + 1}-{zones[-1] + 1})"))
    return checks, volts


def idle_limit_v(config: Config) -> float:
    """Highest voltage a zone may read with no load: that of a quarter of the contact
    threshold on the band (divider with the FSR on top), V."""
    zones = config.zones
    force = zones.contact_threshold_n / 4
    g_r = min(zones.sensitivity_s_per_n) * force * zones.divider_resistor_ohm
    return zones.supply_v * g_r / (1 + g_r)


def check_zones(volts: list[float | None], config: Config) -> Check:
    """Every zone within its range at no load."""
    limit = idle_limit_v(config)
    supply = config.zones.supply_v
    bad, unread = [], []
    for z, v in enumerate(volts):
        if v is None:
            unread.append(z + 1)
        elif v > supply * 1.05:
            bad.append(f"zone {z + 1} reads {v:.2f} V, above the {supply:g} V supply "
                       "(wiring)")
        elif v > limit:
            bad.append(f"zone {z + 1} reads {v:.2f} V with no load (limit {limit:.2f} V): its "
                       "FSR is pressed or shorted, or its divider resistor is missing")
        elif v < -0.05:
            bad.append(f"zone {z + 1} reads {v:.2f} V: below ground (wiring)")
    if bad:
        return Check("zones", False, "; ".join(bad))
    if unread:
        return Check("zones", False, f"zones {', '.join(map(str, unread))} not read "
                     "(their ADC failed)")
    top = max(v for v in volts if v is not None)
    return Check("zones", True, f"{len(volts)} zones at rest, highest {top:.3f} V "
                 f"(limit {limit:.2f} V)")


def check_alert(bus: Any, config: Config, pin_factory: Any, clock: Clock,
                failed_adcs: frozenset[int] = frozenset()) -> Check:
    """Each ADS1115's ALERT/RDY pin (``pins.adc_ready``), if the profile has them: idle
    high, low once a conversion is ready. ADCs at ``failed_adcs`` (addresses whose own
    check failed) are left out: their check names them already."""
    pins = config.pins.adc_ready
    if not pins:
        return Check("alert", True, "no ALERT/RDY pins in the profile (the ADCs are polled)",
                     skipped=True)
    from gpiozero import DigitalInputDevice

    good, bad = [], []
    for address, pin in zip(config.adc.addresses, pins, strict=True):
        if address in failed_adcs:
            good.append(f"GPIO{pin} not checked (its ADC failed)")
            continue
        try:
            device = DigitalInputDevice(pin, pull_up=True, pin_factory=pin_factory)
        except Exception as exc:  # gpiozero raises many kinds
            return Check("alert", False, f"GPIO{pin}: {exc}")
        adc = Ads1115(bus, address)
        try:
            # comparator off (COMP_QUE 11): ALERT/RDY lets go, the pull-up holds it high
            adc.write_config(config_word(0, config.adc.full_scale_v,
                                         config.adc.data_rate_sps) | 0x0003)
            clock.sleep_until(clock.now() + 2 * conversion_time_s(config.adc.data_rate_sps))
            idle_high = bool(device.pin.state)  # the level (``value`` is inverted: pull-up)
            adc.bus.write_i2c_block_data(adc.address, 0x03, [0x80, 0x00])  # Hi_thresh MSB 1
            adc.bus.write_i2c_block_data(adc.address, 0x02, [0x00, 0x00])  # Lo_thresh MSB 0
            word = config_word(0, config.adc.full_scale_v, config.adc.data_rate_sps) & ~0x0003
            adc.write_config(word)  # COMP_QUE 00: ALERT/RDY asserts after each conversion
            clock.sleep_until(clock.now() + 2 * conversion_time_s(config.adc.data_rate_sps))
            ready_low = not device.pin.state
        except OSError as exc:
            bad.append(f"cannot program the comparator of the ADS1115 at {address:#04x}: "
                       f"{_oserror_text(exc)}")
            continue
        finally:
            device.close()
        if idle_high and ready_low:
            good.append(f"GPIO{pin}")
        else:
            bad.append(f"GPIO{pin} (ADS1115 {address:#04x}) "
                       + ("never goes low at conversion ready" if idle_high else "stays low"))
    if bad:
        return Check("alert", False, "; ".join(bad)
                     + ": check the ALERT/RDY wire (open drain, pulled up)")
    return Check("alert", True, f"{', '.join(good)} pulse at conversion ready")


def _pin_check(part: str, pin: int, make: Callable[[], Any], drive: Callable[[Any], None],
               what: str) -> Check:
    try:
        device = make()
    except Exception as exc:  # GPIOPinInUse, PinInvalidPin, lgpio errors ...
        return Check(part, False, f"GPIO{pin}: {type(exc).__name__}: {exc}".rstrip(": "))
    try:
        drive(device)
    except Exception as exc:
        return Check(part, False, f"GPIO{pin}: {exc}")
    finally:
        device.close()
    return Check(part, True, f"GPIO{pin} {what}")


def check_outputs(config: Config, pin_factory: Any, clock: Clock,
                  input_opened: Callable[[int], None] | None = None) -> list[Check]:
    """Motor, button, LED (``input_opened(pin)``: a test hook, see ``BenchRig``)."""
    from gpiozero import PWMLED, Button, PWMOutputDevice

    def buzz(motor: Any) -> None:
        motor.value = 0.8
        clock.sleep_until(clock.now() + BUZZ_S)
        if abs(motor.value - 0.8) > 1e-6:
            raise RuntimeError("the pin does not hold its duty")
        motor.value = 0.0

    def blink(led: Any) -> None:
        led.value = 1.0
        clock.sleep_until(clock.now() + 0.2)
        led.value = 0.0

    pins = config.pins
    checks = [_pin_check("motor", pins.motor_pwm,
                         lambda: PWMOutputDevice(pins.motor_pwm, frequency=200,
                                                 pin_factory=pin_factory),
                         buzz, f"drove the motor {BUZZ_S:g} s (you should have felt it)")]
    try:
        button = Button(pins.button, pull_up=True, pin_factory=pin_factory)
    except Exception as exc:
        checks.append(Check("button", False, f"GPIO{pins.button}: {exc}"))
    else:
        try:
            if input_opened is not None:
                input_opened(pins.button)
            pressed = button.is_pressed
        finally:
            button.close()
        checks.append(Check("button", not pressed, f"GPIO{pins.button} " + (
            "reads pressed with nobody on it: the button is held, or its wire is shorted to "
            "ground" if pressed else "reads released")))
    checks.append(_pin_check("led", pins.led, lambda: PWMLED(pins.led, pin_factory=pin_factory),
                             blink, "blinked the LED"))
    return checks


def check_ble(transport: str | None, timeout_s: float = 10.0) -> Check:
    """The controller opens and powers on through Bumble (None: an in-process virtual
    controller, for ``--sim``)."""
    async def probe() -> str:
        from bumble.hci import Address

        from firmware.ble.device import device_on_controller, device_on_transport

        address = Address("F0:F1:F2:F3:F4:F5")
        if transport is None:
            from bumble.controller import Controller
            from bumble.link import LocalLink

            device, hci = device_on_controller(Controller("selftest", link=LocalLink()),
                                               address), None
        else:
            device, hci = await device_on_transport(transport, address)
        try:
            await asyncio.wait_for(device.power_on(), timeout_s)
            version = getattr(device.host, "local_version", None)
            hci_version = getattr(version, "hci_version", None)
            await device.power_off()
        finally:
            if hci is not None:
                await hci.close()
        return f"HCI version {hci_version}" if hci_version is not None else "powered on"

    where = transport or "a virtual controller (--sim)"
    try:
        detail = asyncio.run(asyncio.wait_for(probe(), timeout_s + 5))
    except Exception as exc:  # Bumble raises many kinds (OSError, ValueError, timeouts)
        hint = ("stop bluetoothd and bring hci0 down (docs/bluetooth.md, 'On a real Pi'), "
                "and give the process CAP_NET_ADMIN and CAP_NET_RAW"
                if transport and transport.startswith("hci-socket") else
                "check the transport")
        text = f"{type(exc).__name__}: {exc}".rstrip(": ")
        return Check("ble", False, f"{where}: {text}; {hint}")
    return Check("ble", True, f"{where}: {detail}")


def check_battery(bus: Any, config: Config, clock: Clock) -> Check:
    """The fuel gauge answers and reads a state of charge (on the IMU's bus)."""
    if not config.battery.gauge:
        return Check("battery", True, "no fuel gauge in the profile (battery.gauge)",
                     skipped=True)
    from firmware.drivers.max17048 import FuelGauge

    gauge = FuelGauge(bus, config.battery.address, clock, logging.getLogger("selftest"),
                      config.battery.low_pct)
    gauge.poll(clock.now())
    where = f"MAX17048 at {config.battery.address:#04x}"
    if gauge.percent is None or gauge.voltage_v is None:
        return Check("battery", False, f"{gauge.fault}; check its SDA/SCL/3V3/GND wires")
    text = f"{where}: {gauge.percent:.0f} %, cell {gauge.voltage_v:.2f} V"
    if gauge.low:
        return Check("battery", True, text + ": low, charge the roller", warning=True)
    if gauge.first_estimate:
        return Check("battery", True, text + ": the gauge was just reset, its first "
                     "estimate reads low under load and settles over about an hour",
                     warning=True)
    return Check("battery", True, text)


def run_selftest(config: Config, open_bus: Callable[[int], Any], clock: Clock,
                 pin_factory: Any = None, *, ble_transport: str | None = "hci-socket:0",
                 check_radio: bool = True, sim: bool = False,
                 on_check: Callable[[Check], None] | None = None,
                 input_opened: Callable[[int], None] | None = None,
                 state_dir: Path | None = None) -> list[Check]:
    """Every check in order (see the module docstring); ``on_check`` sees each as it
    completes. A part that fails does not stop the others unless they need it."""
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        if on_check is not None:
            on_check(check)

    bus_check, buses = check_bus(open_bus, config, sim)
    add(bus_check)
    if bus_check.ok:
        imu_bus, adc_bus = buses[config.imu.bus], buses[config.adc.bus]
        imu = check_imu(imu_bus, config)
        add(imu)
        if imu.ok:
            add(check_motion(imu_bus, config, clock))
        else:
            add(Check("motion", False, "not checked: the IMU does not answer"))
        adc_checks, volts = check_adcs(adc_bus, config, clock)
        for check in adc_checks:
            add(check)
        add(check_zones(volts, config))
        failed = frozenset(config.adc.addresses[int(c.part[3:]) - 1]  # "adcN"
                           for c in adc_checks if not c.ok)
        add(check_alert(adc_bus, config, pin_factory, clock, failed))
        add(check_battery(imu_bus, config, clock))
    for check in check_outputs(config, pin_factory, clock, input_opened):
        add(check)
    if check_radio:
        add(check_ble(None if sim and ble_transport is None else ble_transport))
    else:
        add(Check("ble", True, "not checked (--no-ble)", skipped=True))
    add(check_calibration(state_dir))
    return checks


def check_calibration(state_dir: Path | None) -> Check:
    """What the roller has learned of its parts (never a failure: a new roller has
    learned nothing yet; a file it cannot use is a warning)."""
    if state_dir is None:
        return Check("calib", True, "no state directory given", skipped=True)
    path = Path(state_dir) / CALIBRATION_FILE
    warnings: list[str] = []
    handler = _ListHandler(warnings)
    log = logging.getLogger("smartroller.selftest.calibration")
    log.addHandler(handler)
    log.propagate = False
    try:
        cal = load_calibration(Path(state_dir), log)
    finally:
        log.removeHandler(handler)
    if warnings:
        return Check("calib", True, f"{path}: {warnings[0]}", warning=True)
    return Check("calib", True, cal.line())


class _ListHandler(logging.Handler):
    def __init__(self, out: list[str]) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.append(record.getMessage())

