"""The builder distribution's version and its runtime requirement, from the kit's one version number,
``__version__`` in runtime_py/__init__.py (pyproject.toml cannot put a version into a dependency)."""

import ast
from pathlib import Path

from setuptools import setup


def runtime_version() -> str:
    tree = ast.parse(Path(__file__).parent.joinpath("runtime_py", "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            return ast.literal_eval(node.value)
    raise RuntimeError("runtime_py/__init__.py sets no __version__")


VERSION = runtime_version()
setup(version=VERSION, install_requires=[f"edge-intent-runtime=={VERSION}"])
