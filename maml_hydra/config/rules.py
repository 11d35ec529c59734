"""The rules every schema checks its keys with: each refusal is one ``ConfigError`` line that
names the key, its value and the rule."""

from __future__ import annotations

import math
from typing import Any, Protocol


class ConfigError(ValueError):
    """A configuration value that is well-typed but not allowed; the message names the key."""


# ------------------------------------------------------------------------------- the rules
def require(ok: bool, key: str, value: Any, rule: str) -> None:
    """Raise ConfigError ``<key>=<value> is not allowed: <rule>`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {rule}")


def short(rows: list) -> str:
    """Nested lists as one short string for an error message."""
    text = str([list(row) for row in rows])
    return text if len(text) <= 60 else f"{text[:57]}..."


def is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def finite(key: str, value: float) -> None:
    """A finite number (not inf, not nan)."""
    require(is_finite(value), key, value, "must be a finite number")


def positive(key: str, value: float | None, optional: bool = False) -> None:
    """A finite number > 0 (or null where ``optional``)."""
    if optional and value is None:
        return
    require(is_finite(value) and value > 0, key, value, "must be > 0" + (" or null" * optional))


def at_least(key: str, value: float, low: float) -> None:
    """A finite number >= low."""
    require(is_finite(value) and value >= low, key, value, f"must be >= {low}")


def within(key: str, value: float, low: float, high: float, low_open=False, high_open=False):
    """A finite number in [low, high], with either end open."""
    ok = is_finite(value) and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    brackets = ("(" if low_open else "[") + f"{low}, {high}" + (")" if high_open else "]")
    require(ok, key, value, f"must be in {brackets}")


class Root(Protocol):
    """The root config as a section's ``check`` reads it (``root.Config``), named here so that no
    schema module imports the root, which imports them."""

    env: Any
    algorithm: Any
    inner: Any
    baseline: Any
    policy: Any
    train: Any
    eval: Any
    seed: int
    device: str
