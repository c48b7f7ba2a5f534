"""smartroller firmware: runs on the Raspberry Pi inside the roller (or on emulated hardware)."""

__version__ = "0.1.0"
