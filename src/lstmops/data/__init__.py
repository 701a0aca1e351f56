"""Data: table and array I/O, the drift schedule, sampling of fresh rows, data contracts (the GX wrapper)."""
