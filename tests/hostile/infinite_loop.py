"""Hostile: never finish (each cell under the per-cell limit, the notebook over its wall time)."""
import time

while True:
    time.sleep(0.1)
