"""A killed build leaves the previous bundle as it was.

Real ``python -m builder build`` processes (tiny random BERT, a few hundred utterances) are
SIGKILLed once their stderr shows that a given step is running; the previous bundle must then be
byte-for-byte what it was, and the next run must remove (or, after a kill between the two renames
of the fallback swap, restore from) what the killed one left. The swap itself is hit by a SIGKILL
the process sends itself at the exact point, after the real rename or exchange.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from builder import atomic
from builder.errors import BuildError
from builder.pipeline.build import build_gap
from conftest import ROOT
from runtime_py import Router

# One OpenMP thread: on a busy machine, torch threads spinning against other work made the BoW tier
# take 19 s instead of 2.
ENV = {**os.environ, "INTENT_DATASET_SIZE": "300", "OMP_NUM_THREADS": "1"}
TIERS = ["bow", "transformer"]


class Build:
    """A ``builder build`` subprocess whose stderr is read line by line as it comes."""

    def __init__(self, *args: str, inject: str | None = None) -> None:
        if inject is None:
            command = [sys.executable, "-m", "builder", "build", *args]
        else:  # run the real CLI after `inject` has patched a function to SIGKILL the process at one point
            command = [sys.executable, "-c", f"{inject}\nfrom builder.cli import main\nraise SystemExit(main(sys.argv[1:]))", "build", *args]
        self.proc = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.ended = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.ended = True
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 180.0) -> None:
        """Return as soon as a stderr line contains `text`; fail if the build ends or times out first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines) and not self.ended and time.monotonic() < deadline:
                self._changed.wait(deadline - time.monotonic())
            seen = any(text in line for line in self.lines)
        if not seen:
            state = "ended" if self.ended else f"still running after {timeout:.0f} s"
            self.kill()
            pytest.fail(f"build {state} without printing {text!r}:\n{self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(60)
        self._reader.join(10)

    def finish(self, timeout: float = 300.0) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            self.kill()
        return code


@pytest.fixture
def builds() -> Iterator[list[Build]]:
    """Builds a test starts; any still running at teardown is killed (by its own pid)."""
    started: list[Build] = []
    yield started
    for build in started:
        build.kill()


def start(builds: list[Build], *args: str, inject: str | None = None) -> Build:
    build = Build(*args, inject=inject)
    builds.append(build)
    return build


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under `folder` with the sha256 of its bytes ("dir" for folders)."""
    return {
        p.relative_to(folder).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
    }


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in atomic.leftovers(target))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from tiny_bert import make_tiny_base

    return make_tiny_base(tmp_path_factory.mktemp("base") / "tiny-bert")


@pytest.fixture(scope="module")
def previous(tmp_path_factory, base) -> tuple[Path, dict[str, str]]:
    """A complete default bundle (both tiers and the WebGL graphs) built by `build`, and its snapshot."""
    root = tmp_path_factory.mktemp("previous")
    out = root / "bundle"
    done = subprocess.run([sys.executable, "-m", "builder", "build", "--out", str(out), "--data", str(root / "data"), "--base", str(base), "--size", "base", "--quiet", "--webgl"],
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert build_gap(out, TIERS, webgl=True) is None
    return out, snapshot(out)


@pytest.fixture
def target(previous, tmp_path) -> Path:
    """A copy of the previous bundle for one test to build over."""
    out = tmp_path / "bundle"
    shutil.copytree(previous[0], out)
    return out


def build_args(target: Path, base: Path, *extra: str) -> list[str]:
    return ["--out", str(target), "--data", str(target.parent / "data"), "--base", str(base), "--size", "base", "--quiet", "--webgl", *extra]


def assert_killed_and_intact(build: Build, target: Path, previous: tuple[Path, dict[str, str]]) -> None:
    assert build.proc.returncode == -signal.SIGKILL, build.stderr
    assert "swapping the new bundle" not in build.stderr, "killed too late: the step had already ended"
    assert snapshot(target) == previous[1], "the killed build changed the previous bundle"
    assert leftovers(target) and leftovers(target)[0].startswith(".bundle.tmp-"), "a killed build leaves its staging folder"


def assert_next_run_cleans_up(builds: list[Build], target: Path, base: Path, previous: tuple[Path, dict[str, str]]) -> None:
    """`build --if-missing` after the kill: the bundle is complete, so nothing is built, and the leftovers go."""
    left = leftovers(target)
    after = start(builds, *build_args(target, base, "--if-missing"))
    assert after.finish() == 0, after.stderr
    assert "nothing to build" in after.stderr
    assert f"removed {len(left)} staging folder(s)" in after.stderr
    assert leftovers(target) == []
    assert snapshot(target) == previous[1]


# ------------------------------------------------------------------ a kill during each step


def test_kill_during_bow_training(builds, target, base, previous):
    build = start(builds, *build_args(target, base))
    build.wait_for("vocabulary:")  # printed once the features are counted, before the epochs
    build.kill()
    assert "[3/3]" not in build.stderr
    assert_killed_and_intact(build, target, previous)
    assert_next_run_cleans_up(builds, target, base, previous)


def test_kill_during_transformer_training(builds, target, base, previous):
    # Both tiers: the BoW tier is finished by now, and must not have reached the bundle.
    build = start(builds, *build_args(target, base))
    build.wait_for("layers, hidden")  # train_transformer's line just before the first epoch
    build.kill()
    assert "exported ONNX" not in build.stderr
    assert_killed_and_intact(build, target, previous)
    assert_next_run_cleans_up(builds, target, base, previous)


def test_kill_during_export_and_quantization(builds, target, base, previous):
    # --tiers transformer stages a hard-linked copy of the bundle: a step writing into a linked file
    # in place would change the previous bundle too.
    build = start(builds, *build_args(target, base, "--tiers", "transformer"))
    build.wait_for("exported ONNX")  # then quantization, fusion and calibration run
    stage = target.parent / leftovers(target)[0]
    build.kill()
    assert "calibrated" not in build.stderr
    assert (stage / "onnx" / "model.onnx").is_file(), "the export is written into the staging folder"
    assert_killed_and_intact(build, target, previous)
    assert_next_run_cleans_up(builds, target, base, previous)


def test_kill_during_webgl_graphs(builds, target, base, previous):
    build = start(builds, *build_args(target, base))
    build.wait_for("for WebGL at lengths")
    build.kill()
    assert "WebGL graphs vs fp32" not in build.stderr
    assert_killed_and_intact(build, target, previous)
    assert_next_run_cleans_up(builds, target, base, previous)


KILL_AFTER_SWAP = """
import os, signal, sys
import builder.atomic as atomic
remove = atomic._remove_tree
def remove_or_die(path):
    if path.name.startswith(".bundle.tmp-"):  # the bundle is swapped; its previous version waits at the stage path
        os.kill(os.getpid(), signal.SIGKILL)
    remove(path)
atomic._remove_tree = remove_or_die
"""

KILL_BETWEEN_RENAMES = """
import os, signal, sys
import builder.atomic as atomic
atomic.exchange = lambda a, b: False  # as where renameat2 is missing: the two-rename fallback
rename = os.rename
def rename_then_die(src, dst):
    rename(src, dst)
    if os.path.basename(dst).startswith(".bundle.old-"):  # the bundle moved aside, the new one not yet in place
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename_then_die
"""


def test_kill_right_after_the_swap(builds, target, base, previous):
    build = start(builds, *build_args(target, base, "--tiers", "bow", "--seed", "8"), inject=KILL_AFTER_SWAP)
    assert build.finish() == -signal.SIGKILL, build.stderr
    assert "swapping the new bundle" in build.stderr
    [stage] = leftovers(target)
    assert stage.startswith(".bundle.tmp-") and snapshot(target.parent / stage) == previous[1], "the previous bundle waits at the stage path"
    assert build_gap(target, ["bow"], webgl=False) is None and [t.name for t in Router.from_bundle(target).tiers] == ["bow"]
    new = snapshot(target)
    after = start(builds, *build_args(target, base, "--tiers", "bow", "--if-missing"))
    assert after.finish() == 0 and "nothing to build" in after.stderr, after.stderr
    assert leftovers(target) == [] and snapshot(target) == new


def test_kill_between_the_two_renames_of_the_fallback_swap(builds, target, base, previous):
    build = start(builds, *build_args(target, base, "--tiers", "bow", "--seed", "8"), inject=KILL_BETWEEN_RENAMES)
    assert build.finish() == -signal.SIGKILL, build.stderr
    assert not target.exists()
    old, stage = leftovers(target)  # the previous bundle moved aside, and the new one not yet in its place
    assert old.startswith(".bundle.old-") and snapshot(target.parent / old) == previous[1]
    assert stage.startswith(".bundle.tmp-") and (target.parent / stage / "manifest.json").is_file()
    after = start(builds, *build_args(target, base, "--if-missing"))
    assert after.finish() == 0, after.stderr
    assert f"restored {target} from {old}" in after.stderr and "nothing to build" in after.stderr
    assert leftovers(target) == [] and snapshot(target) == previous[1]


# ------------------------------------------------------------------ --if-missing and partial bundles


def strip_webgl(bundle: Path) -> None:
    """Make `bundle` what an older builder left when killed in its WebGL step: both tiers, no WebGL graphs."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    tier = next(t for t in manifest["tiers"] if t["name"] == "transformer")
    for role in [r for r in tier["files"] if r.startswith("model_webgl_")]:
        (bundle / tier["files"].pop(role)["path"]).unlink()
        tier["variants"].pop(role)
    path.write_text(json.dumps(manifest, indent=2))


def test_build_gap_names_what_is_missing(target):
    assert build_gap(target, TIERS, webgl=True) is None
    webgl_16 = target / "onnx" / "model_webgl_16.onnx"
    webgl_16.write_bytes(webgl_16.read_bytes()[:-1])
    assert "model_webgl_16.onnx: size" in build_gap(target, TIERS, webgl=True)
    strip_webgl(target)
    assert "no WebGL graph for 16 tokens" in build_gap(target, TIERS, webgl=True)
    assert build_gap(target, TIERS, webgl=False) is None and build_gap(target, ["bow"], webgl=True) is None
    assert "no manifest" in build_gap(target.parent / "none", ["bow"], webgl=False)


def test_if_missing_rebuilds_a_bundle_without_its_webgl_graphs(builds, target, base):
    strip_webgl(target)
    partial = snapshot(target)
    assert Router.from_bundle(target, strict=True).tiers, "both tiers still load: only the WebGL graphs are missing"
    build = start(builds, *build_args(target, base, "--if-missing"))
    build.wait_for("staging the new bundle")
    build.kill()
    assert "needs a rebuild: the transformer tier has no WebGL graph for 16 tokens" in build.stderr
    assert snapshot(target) == partial


@pytest.mark.slow
def test_if_missing_completes_a_bundle_without_its_webgl_graphs(builds, target, base):
    strip_webgl(target)
    build = start(builds, *build_args(target, base, "--if-missing"))
    assert build.finish() == 0, build.stderr
    assert "needs a rebuild" in build.stderr and build_gap(target, TIERS, webgl=True) is None
    assert leftovers(target) == []


# ------------------------------------------------------------------ the lock


def test_a_live_builder_keeps_its_lock_and_its_folders(builds, target, base, previous):
    stage = target.parent / ".bundle.tmp-abcd1234"
    stage.mkdir()
    with open(atomic.lock_path(target), "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.truncate(0)
        held.write("4242\n")
        held.flush()
        blocked = start(builds, *build_args(target, base))
        assert blocked.finish() == 2
        assert f"error: {target}: another build (pid 4242) is writing it right now" in blocked.stderr
        assert stage.is_dir() and snapshot(target) == previous[1]
    assert_next_run_cleans_up(builds, target, base, previous)


def test_target_lock_is_reentrant_in_a_thread_and_exclusive_across_threads(tmp_path):
    target = tmp_path / "out"
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            with atomic.target_lock(target):
                pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    with atomic.target_lock(target):
        with atomic.staged_dir(target) as stage:  # nested: same thread, no deadlock, no clean-up of its own stage
            (stage / "x").write_text("1")
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert (target / "x").read_text() == "1"
    assert len(errors) == 1 and isinstance(errors[0], BuildError) and "is writing it right now" in str(errors[0])
    with atomic.target_lock(target):  # released
        pass


# ------------------------------------------------------------------ the swap, in process


def test_recover_restores_a_target_killed_between_the_renames(tmp_path, capsys):
    target = tmp_path / "out"
    old = tmp_path / ".out.old-abcd1234"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    (tmp_path / ".out.tmp-zz99zz99").mkdir()
    (tmp_path / ".other.tmp-abcd1234").mkdir()  # another target's: not ours to remove
    with atomic.target_lock(target):
        pass
    assert (target / "manifest.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-abcd1234", "out"]  # the lock file goes too
    assert "restored" in capsys.readouterr().err


def test_recover_keeps_a_present_target_and_drops_stale_copies(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "new").write_text("new")
    old = tmp_path / ".out.old-abcd1234"
    old.mkdir()
    (old / "old").write_text("old")
    assert atomic.recover(target, log=lambda _: None) == [old]
    assert sorted(p.name for p in target.iterdir()) == ["new"] and not old.exists()


@pytest.mark.parametrize("one_step", [True, False])
def test_staged_dir_swaps_in_one_step_or_two(tmp_path, monkeypatch, one_step):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a").write_text("old")
    if one_step:
        if not atomic.exchange(tmp_path, tmp_path):  # renameat2 of a path with itself: a no-op where supported
            pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    else:
        monkeypatch.setattr(atomic, "exchange", lambda a, b: False)
    with atomic.staged_dir(target) as stage:
        (stage / "b").write_text("new")
    assert [p.name for p in target.iterdir()] == ["b"]
    assert atomic.leftovers(target) == []


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "from_a").touch()
    if not atomic.exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not available here")
    assert [p.name for p in b.iterdir()] == ["from_a"] and not any(a.iterdir())
    with pytest.raises(FileNotFoundError):
        atomic.exchange(a, tmp_path / "missing")
