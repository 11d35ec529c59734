"""``python -m maml_hydra.results COMMAND ...``: the results commands.

- ``table``: a family's tables and plot from its committed result files (``--bars``,
  ``--paper``, ``--search`` for the cross-family, paper-scale and search views);
- ``seeds``: Table 4 numbers of several 2D-navigation seeds, per seed and averaged;
- ``paired``: differences between two sets of result files, paired per seed;
- ``sets``: sets of result files side by side (other folders, step sizes, meta-optimizers);
- ``export``: compact result files from runs, an evaluation report or an Optuna search;
- ``summary``: one run's TensorBoard curves as a Markdown table;
- ``docs``: regenerate (or ``--check``) the generated tables in the docs.

``python -m maml_hydra.results COMMAND --help`` gives each command's options.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "table": "maml_hydra.results.table",
    "seeds": "maml_hydra.results.seeds",
    "paired": "maml_hydra.results.paired",
    "sets": "maml_hydra.results.sets",
    "export": "maml_hydra.results.export",
    "summary": "maml_hydra.results.summary",
    "docs": "maml_hydra.results.docs",
}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        sys.exit(f"error: unknown command {command!r}: choose one of {', '.join(COMMANDS)}")
    importlib.import_module(COMMANDS[command]).main(rest)


if __name__ == "__main__":
    main()
