"""Jittered periods (NACK-style): connections spread their checks instead of firing together."""

from __future__ import annotations

import random


def first_delay(interval: float, rng: random.Random | None = None) -> float:
    """Initial delay in [0.1, 1.0] x interval so a restart does not check all at once."""
    return interval * (rng or random).uniform(0.1, 1.0)


def jittered(interval: float, rng: random.Random | None = None, spread: float = 0.2) -> float:
    """``interval`` +/- ``spread`` (fraction)."""
    return interval * (rng or random).uniform(1.0 - spread, 1.0 + spread)
