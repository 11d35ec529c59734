"""The command-line entry points' shared part: every configuration mistake, Hydra's own or
ours, ends as one line on stderr (``error: ...``) and exit status 1, never a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

# Lines of Hydra's and OmegaConf's messages that only repeat the key or point elsewhere.
_NOISE = ("full_key:", "reference_type=", "object_type=", "Set the environment variable")


def one_line(err: BaseException) -> str:
    """Hydra's message for a composition error, with its cause, on one line: the key, what is
    wrong with it, and Hydra's suggestion (a close key, the options of a group) when it has one.
    Schema nodes (``base_*``) are left out of option lists."""
    parts: list[str] = []
    options: list[str] = []
    for e in (err, err.__cause__):
        if e is None or (parts and str(e) in parts):
            continue
        text = str(e).split("Config search path:")[0]
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith(_NOISE):
                continue
            if line.startswith("Available options"):
                parts.append(line.rstrip(":") + ":")
            elif parts and parts[-1].endswith(":") and " " not in line:
                if not line.startswith("base_"):
                    options.append(line)
            elif line not in parts:
                parts.append(line)
    if options:
        parts[-1] += " " + ", ".join(options)
    return " ".join(p if p.endswith((".", ":", "?")) else p + "." for p in parts).rstrip(".")


def run(hydra_main: Callable[[], None], argv: list[str] | None = None) -> None:
    """Run a ``@hydra.main`` function with Hydra raising its errors to us (HYDRA_FULL_ERROR),
    and turn configuration errors into one line. ``+experiment=NAME`` is taken as
    ``experiment=NAME``: the group is in the defaults list, so that a baseline's keys hold over
    an experiment's."""
    sys.argv = [
        sys.argv[0],
        *(a[1:] if a.startswith("+experiment=") else a for a in (argv or sys.argv[1:])),
    ]
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra_main()
    except (HydraException, OmegaConfBaseException) as err:
        sys.exit(f"error: {one_line(err)}")
