"""smartroller host: the laptop side (daemon, analysis, storage, CLI)."""
