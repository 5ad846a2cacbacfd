"""The packages people install: runtime_py's wheel (built with `python -m build`, installed offline
into a fresh virtual environment by README's "Use it in your backend", then run there), the builder's
distribution, the one version number, and micropip's wheel for the Pyodide engine. The npm package is
tested in the browser (e2e/test_packages.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from builder.serve.wheels import MICROPIP_WHEEL, build_distributions, runtime_wheel_name
from conftest import ROOT
from runtime_py import Router, __version__

README_LINES = 10  # the most lines a README usage section's code may take


def readme_blocks(heading: str) -> list[tuple[str, str]]:
    """The fenced code blocks of README.md's section `heading`, as (language, code)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section '## {heading}'"
    return re.findall(r"^```(\w+)\n(.*?)^```", match.group(1), re.M | re.S)


def metadata(wheel: Path) -> tuple[list[str], dict[str, list[str]]]:
    """A wheel's file names, and its METADATA fields (each a list of values)."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        text = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    message = Parser().parsestr(text)
    return names, {key: message.get_all(key) for key in set(message.keys())}


@pytest.fixture(scope="module")
def runtime_dists(tmp_path_factory) -> list[Path]:
    return build_distributions(ROOT / "runtime_py", tmp_path_factory.mktemp("runtime-dist"))


@pytest.fixture(scope="module")
def runtime_whl(runtime_dists: list[Path]) -> Path:
    wheels = [p for p in runtime_dists if p.suffix == ".whl"]
    assert [p.name for p in wheels] == [runtime_wheel_name()]
    return wheels[0]


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@pytest.fixture(scope="module")
def backend(tmp_path_factory, runtime_whl: Path, small_bundle: Path) -> tuple[Path, Path]:
    """(project folder, its fresh virtual environment) after README's install lines ran there,
    offline: the folder holds the wheel and the bundle as `finance/`, as the README says."""
    project = tmp_path_factory.mktemp("backend")
    shutil.copy(runtime_whl, project)
    shutil.copytree(small_bundle, project / "finance")
    env_dir = project / ".venv"
    venv.create(env_dir, with_pip=True)
    shell = [code for lang, code in readme_blocks("Use it in your backend") if lang == "bash"]
    assert len(shell) == 1, "the section has one shell block: the install"
    env = {**os.environ, "PATH": f"{_python(env_dir).parent}{os.pathsep}{os.environ['PATH']}", "PIP_NO_INDEX": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1", "VIRTUAL_ENV": str(env_dir)}
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", shell[0]], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return project, env_dir


def run_isolated(env_dir: Path, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`code` in the environment's Python, isolated (-I): neither this checkout nor PYTHONPATH is on sys.path."""
    return subprocess.run([str(_python(env_dir)), "-I", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_runtime_wheel_is_pure_python_and_needs_nothing(runtime_whl: Path, runtime_dists: list[Path]) -> None:
    names, fields = metadata(runtime_whl)
    sources = {f"runtime_py/{p.name}" for p in (ROOT / "runtime_py").iterdir() if p.suffix == ".py"} | {"runtime_py/py.typed"}
    assert {n for n in names if not n.startswith("edge_intent_runtime-")} == sources
    assert fields["Name"] == ["edge-intent-runtime"] and fields["Version"] == [__version__]
    assert fields["Requires-Dist"] == ['onnxruntime>=1.20; extra == "onnx"'], "the only requirement is the [onnx] extra"
    assert "Root-Is-Purelib: true" in zipfile.ZipFile(runtime_whl).read(f"edge_intent_runtime-{__version__}.dist-info/WHEEL").decode()
    assert sorted(p.name for p in runtime_dists) == [runtime_wheel_name(), f"edge_intent_runtime-{__version__}.tar.gz"]


def test_readme_backend_section_runs_in_the_fresh_environment(backend: tuple[Path, Path], small_bundle: Path) -> None:
    project, env_dir = backend
    blocks = readme_blocks("Use it in your backend")
    assert sum(len(code.splitlines()) for _, code in blocks) <= README_LINES
    (python,) = [code for lang, code in blocks if lang == "python"]
    done = run_isolated(env_dir, python, project)
    assert done.returncode == 0, done.stderr
    want = Router.from_bundle(small_bundle).classify(re.search(r'classify\("([^"]+)"\)', python).group(1))
    assert done.stdout.strip() == f"{want.intent} {want.confidence} {want.slots}"


def test_the_environment_runs_the_installed_wheel(backend: tuple[Path, Path]) -> None:
    project, env_dir = backend
    code = ("import json, runtime_py; from importlib.metadata import requires, version; "
            "print(json.dumps([runtime_py.__file__, version('edge-intent-runtime'), requires('edge-intent-runtime')]))")
    done = run_isolated(env_dir, code, project)
    assert done.returncode == 0, done.stderr
    where, version, requirements = json.loads(done.stdout)
    assert Path(where).is_relative_to(env_dir) and not Path(where).is_relative_to(ROOT)
    assert version == __version__ and requirements == ['onnxruntime>=1.20; extra == "onnx"']


def test_the_installed_runtime_refuses_an_unknown_bundle_format(backend: tuple[Path, Path], tmp_path: Path, small_bundle: Path) -> None:
    project, env_dir = backend
    future = tmp_path / "future"
    shutil.copytree(small_bundle, future)
    manifest = json.loads((future / "manifest.json").read_text())
    (future / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    code = (f"from runtime_py import Router, BundleError\ntry:\n    Router.from_bundle({str(future)!r}, strict=True)\n"
            "except BundleError as exc:\n    print(exc)")
    done = run_isolated(env_dir, code, project)
    assert done.returncode == 0, done.stderr
    assert "format_version 99 is not supported (this runtime reads 1); rebuild the bundle" in done.stdout


def test_builder_distribution_requires_the_runtime_of_its_version(tmp_path: Path) -> None:
    dists = build_distributions(ROOT, tmp_path)
    (wheel,) = [p for p in dists if p.suffix == ".whl"]
    names, fields = metadata(wheel)
    assert fields["Name"] == ["edge-intent-kit"] and fields["Version"] == [__version__]
    assert f"edge-intent-runtime=={__version__}" in fields["Requires-Dist"]
    assert {"build", "serve", "dev", "onnx"} <= set(fields["Provides-Extra"])
    assert any(n.startswith("builder/") for n in names) and not any(n.startswith("runtime_py/") for n in names)


def test_one_version_number() -> None:
    """runtime_py.__version__ is the source; the npm package repeats it in two places."""
    package = json.loads((ROOT / "web" / "package.json").read_text())
    version_js = re.search(r'export const VERSION = "([^"]+)";', (ROOT / "web" / "version.js").read_text())
    assert version_js and version_js.group(1) == __version__, "set VERSION in web/version.js to runtime_py.__version__"
    assert package["version"] == __version__, "set the version in web/package.json to runtime_py.__version__"


def test_micropip_wheel_is_the_one_pyodide_expects() -> None:
    lock = ROOT / "node_modules" / "pyodide" / "pyodide-lock.json"
    if not lock.is_file():
        pytest.skip("node_modules not installed (npm ci --ignore-scripts)")
    assert json.loads(lock.read_text())["packages"]["micropip"]["file_name"] == MICROPIP_WHEEL
