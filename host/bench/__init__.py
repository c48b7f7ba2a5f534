"""Measuring the product against the simulator's truth (docs/benchmarks.md).

The only host package (with the demo) that imports ``firmware.sim``; nothing in the
product imports it.

- ``suite``: ``smartroller bench``, the simulated suite end to end.
- ``closed_loop``: the simulated roller, a modeled link and the live analysis in one loop.
- ``scoring``: the figures, from the analysis's output and the world's truth.
- ``ble``: the Bluetooth path (``smartroller bench --ble``).
- ``strokes``: stroke segmentation alone (``python -m host.bench.strokes``).
- ``store``: the session store's speed (``python -m host.bench.store``).
- ``workers``: bench work over processes, in order.
"""
