"""Host analysis: strokes, spine region and warnings from the frame stream (no BLE, no SQLite)."""
