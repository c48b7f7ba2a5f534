"""Who may talk to the roller: the pairing window, the pairing policy and the bond check.

New bonds are accepted only while the pairing window is open (button held 3 s, 60 s).
Pairing is LE Secure Connections with bonding; with a static passkey (optional) it is
passkey entry, which protects against a man in the middle.

Bumble quirks handled here (Bumble 0.0.236):

- Bumble marks every encrypted LE link ``authenticated``, Just Works included, so the
  link flag says nothing about MITM protection: ``bond_is_valid`` looks at the stored
  key's own ``authenticated`` flag instead.
- Bumble falls back to legacy pairing when the central does not offer Secure
  Connections, and stores legacy keys as ``ltk_central``/``ltk_peripheral``:
  ``bond_is_valid`` accepts only a Secure Connections key (``ltk``), so the roller
  runs in Secure Connections Only mode.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

from bumble.keys import PairingKeys
from bumble.pairing import PairingConfig, PairingDelegate

PAIRING_WINDOW_S = 60.0
"""How long the pairing window stays open, s."""
PASSKEY_MAX = 999_999
"""Largest static passkey (six decimal digits)."""

log = logging.getLogger("smartroller.ble.pairing")


class PairingWindow:
    """The time span in which the roller accepts new bonds, on the firmware clock (s).

    duration_s: how long ``open`` keeps it open, s.
    """

    def __init__(self, duration_s: float = PAIRING_WINDOW_S) -> None:
        if not duration_s > 0:
            raise ValueError("the pairing window needs a duration > 0 s")
        self.duration_s = float(duration_s)
        self.closes_at = -math.inf

    def open(self, now: float) -> None:
        """Open (or extend) the window from ``now`` (s) for ``duration_s``."""
        self.closes_at = now + self.duration_s

    def close(self) -> None:
        """Close the window now."""
        self.closes_at = -math.inf

    def is_open(self, now: float) -> bool:
        """True while the window is open at ``now`` (s)."""
        return now < self.closes_at

    def remaining_s(self, now: float) -> float:
        """Time left before the window closes, s (0 when closed)."""
        return max(0.0, self.closes_at - now)


class RollerPairingDelegate(PairingDelegate):
    """Bumble pairing delegate of the roller.

    window_open: called at each pairing request; False refuses it (SMP "pairing not
        supported", the answer a device that does not pair gives).
    passkey: static six-digit passkey, or None for Just Works (no MITM protection).
    """

    def __init__(self, window_open: Callable[[], bool], passkey: int | None = None) -> None:
        io = (PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT if passkey is None
              else PairingDelegate.IoCapability.DISPLAY_OUTPUT_ONLY)
        # The roller keeps one static address (no privacy), so it has no identity key to
        # give: it distributes nothing (the Secure Connections LTK is derived by both).
        # A Bumble host holding an IRK would scan to resolve the roller's address before
        # every connect, with no timeout. The host's identity key is taken (laptops
        # use resolvable private addresses).
        keys = PairingDelegate.KeyDistribution
        super().__init__(io_capability=io,
                         local_initiator_key_distribution=keys.DISTRIBUTE_ENCRYPTION_KEY
                         | keys.DISTRIBUTE_IDENTITY_KEY,
                         local_responder_key_distribution=keys(0))
        self._window_open = window_open
        self._passkey = passkey

    async def accept(self) -> bool:
        """Accept a pairing request only while the pairing window is open."""
        if self._window_open():
            return True
        log.info("pairing request refused: the pairing window is closed")
        return False

    async def generate_passkey(self) -> int:
        """The static passkey (passkey mode only)."""
        if self._passkey is None:  # pragma: no cover - Bumble asks only in passkey mode
            raise RuntimeError("no passkey configured")
        return self._passkey

    async def display_number(self, number: int, digits: int) -> None:
        """Nothing to display on: the passkey is printed on the roller's label."""
        log.info("pairing with the roller's static passkey")


def check_passkey(passkey: int | None) -> int | None:
    """``passkey`` if it is None or 0..999999, else ValueError."""
    if passkey is None:
        return None
    if isinstance(passkey, bool) or not isinstance(passkey, int) or not (
            0 <= passkey <= PASSKEY_MAX):
        raise ValueError(f"passkey must be an integer 0..{PASSKEY_MAX}")
    return passkey


def pairing_config(delegate: RollerPairingDelegate, *, mitm: bool) -> PairingConfig:
    """Secure Connections, bonding, MITM when a passkey is set."""
    return PairingConfig(sc=True, mitm=mitm, bonding=True, delegate=delegate)


def bond_is_valid(keys: PairingKeys | None, *, require_mitm: bool) -> bool:
    """Whether stored ``keys`` make a bond the roller serves.

    A Secure Connections LTK is required (legacy-pairing keys are refused); with
    ``require_mitm`` (passkey mode) the key must come from an authenticated pairing
    (passkey entry), whatever Bumble's link flag says.
    """
    if keys is None or keys.ltk is None:
        return False
    return bool(keys.ltk.authenticated) or not require_mitm
