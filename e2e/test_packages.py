"""The npm package in a project of its own: `npm pack` of web/, installed offline into a scratch folder
by README's "Use it in your own site" (run as written, but for the line that starts a server: the
test serves public/ itself on a free port), bundled by esbuild, loaded in Chromium; and its
TypeScript declarations checked by tsc from that project."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, expect

from runtime_py import Router, __version__

from .conftest import READY_TIMEOUT_MS, ROOT, PageLog, static_server

NODE_MODULES = ROOT / "node_modules"
SERVER_LINE = re.compile(r"^python3 -m http\.server\b")
README_LINES = 10

# A project that uses the package from TypeScript: it compiles only if the declarations resolve
# through the package's "exports" and describe the API (a wrong option must be an error).
CHECK_TS = """\
import { IntentClient, InputError, VERSION } from "edge-intent-kit";
import type { RouteResult } from "edge-intent-kit/router.js";

const client: IntentClient = await IntentClient.create({ bundleUrl: "./bundle/", tiers: ["bow"], ortUrl: "./ort/" });
const result: RouteResult = await client.classify("hello");
const answer: string = `${result.intent} ${result.confidence ?? 0} ${VERSION}`;
const refused: boolean = new InputError("too long") instanceof Error;
// @ts-expect-error: not a backend
await IntentClient.create({ backend: "cuda" });
export { answer, refused };
"""
TSCONFIG = {
    "compilerOptions": {"target": "es2022", "module": "es2022", "moduleResolution": "bundler", "lib": ["es2022", "dom"],
                        "strict": True, "noEmit": True, "types": []},
    "files": ["check.ts"],
}


def readme_blocks(heading: str) -> list[tuple[str, str]]:
    """The fenced code blocks of README.md's section `heading`, as (language, code)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section '## {heading}'"
    return re.findall(r"^```(\w+)\n(.*?)^```", match.group(1), re.M | re.S)


def _npm(args: list[str], cwd: Path, timeout: float = 300) -> str:
    env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_audit": "false", "npm_config_fund": "false"}
    done = subprocess.run(["npm", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"npm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`npm pack` of web/ (its prepack script writes the declarations with tsc)."""
    if not (NODE_MODULES / ".bin" / "tsc").exists():
        pytest.fail("typescript is not installed: npm ci --ignore-scripts (make does)")
    out = tmp_path_factory.mktemp("npm-pack")
    _npm(["pack", "--silent", "--pack-destination", str(out)], ROOT / "web")
    (packed,) = out.glob("*.tgz")
    return packed


def test_the_tarball_holds_the_package(tarball: Path) -> None:
    with tarfile.open(tarball) as archive:
        names = {n.removeprefix("package/") for n in archive.getnames()}
        manifest = json.load(archive.extractfile("package/package.json"))
    modules = {p.name for p in (ROOT / "web").glob("*.js") if not p.name.endswith(".test.js")}
    assert tarball.name == f"edge-intent-kit-{__version__}.tgz" and manifest["version"] == __version__
    assert {n for n in names if n.endswith(".js")} == modules, "every module, no test"
    assert {f"types/{m.removesuffix('.js')}.d.ts" for m in modules} <= names
    assert manifest["dependencies"] == {"onnxruntime-web": json.loads((NODE_MODULES / "onnxruntime-web" / "package.json").read_text())["version"]}


@pytest.fixture(scope="module")
def site_project(tmp_path_factory: pytest.TempPathFactory, tarball: Path, bundle_dir: Path) -> Path:
    """An npm project with esbuild where README's site section ran: the tarball and `finance/` in,
    public/ out.

    npm runs offline, without scripts: esbuild and the package's dependencies are linked from this
    checkout's node_modules, so installing the tarball fetches nothing (nothing is published)."""
    project = tmp_path_factory.mktemp("site-project")
    shutil.copy(tarball, project)
    (project / "finance").symlink_to(bundle_dir, target_is_directory=True)
    esbuild = json.loads((NODE_MODULES / "esbuild" / "package.json").read_text())["version"]
    (project / "package.json").write_text(json.dumps({"private": True, "type": "module", "devDependencies": {"esbuild": esbuild}}))
    with tarfile.open(tarball) as archive:
        needs = json.load(archive.extractfile("package/package.json"))["dependencies"]
    for name in [*needs, "esbuild"]:
        link = project / "node_modules" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(NODE_MODULES / name, target_is_directory=True)
    (project / "node_modules" / ".bin").mkdir()
    (project / "node_modules" / ".bin" / "esbuild").symlink_to("../esbuild/bin/esbuild")
    blocks = readme_blocks("Use it in your own site")
    assert [lang for lang, _ in blocks] == ["bash"] and len(blocks[0][1].splitlines()) <= README_LINES
    script = "\n".join(line for line in blocks[0][1].splitlines() if not SERVER_LINE.match(line))
    env = {**os.environ, "npm_config_offline": "true", "npm_config_ignore_scripts": "true", "npm_config_update_notifier": "false",
           "npm_config_audit": "false", "npm_config_fund": "false"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (project / "node_modules" / "edge-intent-kit").is_symlink(), "installed from the tarball, not linked"
    return project


@pytest.fixture(scope="module")
def served_site(site_project: Path) -> Iterator[str]:
    with static_server(site_project / "public") as base:
        yield base


def test_readme_site_section_answers_in_chromium_as_runtime_py(context: BrowserContext, served_site: str, site_project: Path,
                                                               router_bow: Router) -> None:
    assert (site_project / "public" / "worker.js").is_file(), "esbuild wrote the worker next to the page's script"
    text = re.search(r'classify\("([^"]+)"\)', (site_project / "app.js").read_text()).group(1)
    log = PageLog()
    page = log.watch(context.new_page())
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(served_site)
    expect(page.locator("body")).to_have_text(router_bow.classify(text).intent, timeout=READY_TIMEOUT_MS)
    assert any(url.endswith("/worker.js") for url in log.requests)
    # The README's page has no icon: the browser's request for one is the only 404 allowed.
    assert all(url.endswith("/favicon.ico") for url in missing), missing
    assert not [e for e in log.errors if "status of 404" not in e], log.errors
    assert not log.foreign(served_site), log.foreign(served_site)


def test_declarations_type_check_a_typescript_project(site_project: Path) -> None:
    (site_project / "check.ts").write_text(CHECK_TS)
    (site_project / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    done = subprocess.run([str(NODE_MODULES / ".bin" / "tsc"), "-p", "tsconfig.json"], cwd=site_project,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
