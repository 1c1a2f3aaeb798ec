"""Command-line pieces more than one script takes: a ``start:stop:step`` grid of numbers."""

from __future__ import annotations

import argparse


def value_grid(spec: str) -> list[float]:
    """``start:stop:step`` (stop included) or one number, as an argparse ``type``: a bad spec is
    an argparse error that shows the expected form."""
    parts = spec.split(":")
    try:
        values = [float(v) for v in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected start:stop:step, for example 0.4:0.6:0.05") from None
    if len(values) == 1:
        return values
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected start:stop:step, for example 0.4:0.6:0.05")
    start, stop, step = values
    if step <= 0 or stop < start:
        raise argparse.ArgumentTypeError(f"{spec!r}: needs start <= stop and a positive step")
    n = int(round((stop - start) / step))
    return [round(start + i * step, 6) for i in range(n + 1)]
