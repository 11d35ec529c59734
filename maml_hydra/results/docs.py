"""The docs' result tables, regenerated from the committed result files.

A generated table in a Markdown file is a block that names the results command printing it:

    <!-- generated: table --paper docs/results/paper/halfcheetah_dir -->
    ...what the command prints...
    <!-- end generated -->

``python -m maml_hydra.results docs`` rewrites every block of README.md and docs/*.md from its
command; ``--check`` rewrites nothing and fails, naming the file and the block, where a block
differs from what the committed files give (tests/test_results.py runs it).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"(<!-- generated: (.+?) -->\n)(.*?)(<!-- end generated -->)", re.DOTALL)
DEFAULT_FILES = ("README.md", "docs/*.md")


# the commands a block may name: they print and write nothing
READ_ONLY = ("table", "seeds", "paired", "sets")
WRITES = ("--plot", "--curves", "--export")


class BlockError(ValueError):
    """A generated block whose command is not a read-only results command."""


def render(command: str, root: Path = ROOT) -> str:
    """What ``python -m maml_hydra.results <command>`` prints, run in-process from ``root``."""
    from maml_hydra.results.__main__ import COMMANDS

    argv = shlex.split(command)
    if not argv or argv[0] not in READ_ONLY or any(a.split("=")[0] in WRITES for a in argv):
        raise BlockError(
            f"a generated block may name only {' or '.join(READ_ONLY)}, without "
            f"{', '.join(WRITES)}: {command!r}"
        )
    module = importlib.import_module(COMMANDS[argv[0]])
    out = io.StringIO()
    with contextlib.chdir(root), contextlib.redirect_stdout(out):
        module.main(argv[1:])
    return out.getvalue().rstrip("\n") + "\n"


def regenerate(text: str, root: Path = ROOT) -> tuple[str, list[str]]:
    """``text`` with every generated block rewritten, and the commands of the blocks that
    changed."""
    changed: list[str] = []

    def fill(match: re.Match) -> str:
        head, command, body, tail = match.groups()
        new = render(command, root)
        if new != body:
            changed.append(command)
        return head + new + tail

    return BLOCK.sub(fill, text), changed


def files(patterns: list[str], root: Path = ROOT) -> list[Path]:
    """The Markdown files the patterns name (relative to ``root``, or absolute)."""
    found: set[Path] = set()
    for pattern in patterns:
        matches = [Path(pattern)] if Path(pattern).is_absolute() else list(root.glob(pattern))
        if not matches or not all(m.is_file() for m in matches):
            sys.exit(f"error: no file matches {pattern}")
        found.update(matches)
    return sorted(found)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m maml_hydra.results docs", description=__doc__.splitlines()[0]
    )
    parser.add_argument("files", nargs="*", default=list(DEFAULT_FILES))
    parser.add_argument(
        "--check", action="store_true", help="change nothing; fail where a block is out of date"
    )
    args = parser.parse_args(argv)
    stale = []
    for path in files(args.files):
        text = path.read_text()
        try:
            new, changed = regenerate(text)
        except BlockError as error:
            sys.exit(f"error: {path}: {error}")
        for command in changed:
            stale.append(f"{path}: {command}")
        if changed and args.check:
            old_block = text.splitlines()
            print("".join(difflib.unified_diff(old_block, new.splitlines(), lineterm="\n", n=1)))
        if changed and not args.check:
            path.write_text(new)
    if args.check and stale:
        sys.exit(
            f"error: out of date, regenerate with python -m maml_hydra.results docs: {stale[0]}"
        )
    for entry in stale:
        print(f"regenerated {entry}")
