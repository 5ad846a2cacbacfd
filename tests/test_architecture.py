"""The shape of builder/ (docs/ARCHITECTURE.md): its packages keep the layers of the data's path
(pyproject.toml, [tool.importlinter]), no module imports itself back through others, and cli.py stays
a thin map from arguments to calls."""

from __future__ import annotations

import subprocess
import sys

import grimp

from conftest import ROOT

MAX_CLI_LINES = 300


def test_the_layers_of_the_data_path_hold():
    lint = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"]
    run = subprocess.run(lint, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_import_cycles():
    graph = grimp.build_graph("builder", cache_dir=None)
    # Imports inside functions count: the command handlers import their stage only when they run.
    assert graph.direct_import_exists(importer="builder.cli", imported="builder.pipeline.build")
    cycles = []
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back:
                cycles.append(" -> ".join((importer, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_cli_stays_thin():
    lines = len((ROOT / "builder" / "cli.py").read_text(encoding="utf-8").splitlines())
    assert lines < MAX_CLI_LINES, f"builder/cli.py has {lines} lines: move what is not argument mapping into a stage"
