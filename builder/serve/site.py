"""``python -m builder site``: the demo as a self-contained static folder (docs/SERVE.md).

The folder has the URL layout of :mod:`builder.serve.web_assets` (no /api) and a ``_headers`` file
for hosts that read one. It is written atomically and only replaces a folder this command wrote.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from runtime_py.bundle import MANIFEST_NAME, Manifest, sha256_file
from runtime_py.errors import BundleError

from ..atomic import refuse_foreign_dir, staged_dir
from ..errors import BuildError
from .web_assets import Resolved, WebLayout, bundle_paths, headers_file, require_assets, webgl_roles

HEADERS_NAME = "_headers"
MIB = 1 << 20
DEFAULT_MAX_FILE_MIB = 25.0  # Cloudflare Pages' limit per file
_SIGNATURE = headers_file().splitlines()[0]


@dataclass(frozen=True)
class SiteReport:
    out: Path
    files: list[tuple[str, int]]  # (relative path, bytes), biggest first

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def is_site(folder: Path) -> bool:
    """Whether `folder` was written by this command (its _headers starts with our signature)."""
    try:
        with open(folder / HEADERS_NAME, encoding="utf-8") as fh:
            return fh.readline().rstrip("\n") == _SIGNATURE
    except (OSError, UnicodeDecodeError):
        return False


def _refuse_source_folder(out: Path, layout: WebLayout) -> None:
    """Even with --force, never replace a folder that holds what the site is made from."""
    target = out.resolve()
    sources = [layout.bundle, layout.static, layout.web, layout.node_modules, layout.runtime_package, Path.cwd()]
    for source in sources:
        if source.resolve().is_relative_to(target):
            raise BuildError(f"{out}: refusing to write the site over a folder that contains {source}; choose another --out")


def _copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def _site_manifest(layout: WebLayout, manifest: Manifest) -> bytes | None:
    """The bundle's manifest without the roles the site leaves out (None: copy it as it is).

    Without --webgl the WebGL graphs are not shipped, so the site's manifest does not list them
    and the page reports WebGL as unavailable instead of failing to fetch them."""
    if "webgl" in layout.backends:
        return None
    data = json.loads((layout.bundle / MANIFEST_NAME).read_text(encoding="utf-8"))
    changed = False
    for tier, spec in zip(data.get("tiers") or [], manifest.tiers):
        for role in webgl_roles(spec):
            changed |= (tier.get("files") or {}).pop(role, None) is not None
            (tier.get("variants") or {}).pop(role, None)
    return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8") if changed else None


def _refuse_big_files(items: list[Resolved], max_file_mib: float) -> None:
    limit = max_file_mib * MIB
    for item in items:
        size = item.path.stat().st_size if item.path is not None else 0
        if size > limit:
            raise BuildError(
                f"{item.url}: {size / MIB:.2f} MiB is over --max-file-mb {max_file_mib:g} (MiB; static hosts refuse big files: "
                f"Cloudflare Pages over 25 MiB, GitHub Pages over 100 MB); leave it out (drop --webgpu or --webgl) or raise --max-file-mb"
            )


def build_site(layout: WebLayout, out: Path, force: bool = False, max_file_mib: float = DEFAULT_MAX_FILE_MIB) -> SiteReport:
    """Write the site for `layout` into `out`; bundle files are checked against the manifest's
    sizes and sha256 as they are copied, so a corrupt bundle never ships. Refuses (BuildError,
    nothing written) when a file would be over `max_file_mib` MiB."""
    out = Path(out)
    if not force:
        refuse_foreign_dir(out, is_site, "a site written by `python -m builder site` (use --force to replace it)")
    elif out.exists() and not out.is_dir():
        raise BuildError(f"{out}: exists and is not a folder")
    _refuse_source_folder(out, layout)
    require_assets(layout)
    manifest = layout.manifest()
    expected = {f"bundle/{e.path}": e for tier in manifest.tiers for e in tier.files.values()}
    items = list(layout.files(manifest))
    _refuse_big_files(items, max_file_mib)
    site_manifest = _site_manifest(layout, manifest)
    written: list[tuple[str, int]] = []
    with staged_dir(out) as stage:
        for item in items:
            target = stage / item.url
            if item.url == f"bundle/{MANIFEST_NAME}" and site_manifest is not None:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(site_manifest)
            else:
                _copy(item.path, target)
                entry = expected.get(item.url)
                if entry is not None and (target.stat().st_size != entry.bytes or sha256_file(target) != entry.sha256):
                    raise BundleError(f"{item.path}: does not match {layout.bundle / MANIFEST_NAME} (size or sha256); rebuild the bundle")
            written.append((item.url, target.stat().st_size))
        missing = sorted({f"bundle/{p}" for p in bundle_paths(manifest, layout.with_fp32, "webgl" in layout.backends)} - {url for url, _ in written})
        if missing:
            raise BundleError(f"{layout.bundle}: files listed in the manifest are missing: {', '.join(missing)}")
        (stage / HEADERS_NAME).write_text(headers_file(), encoding="utf-8")
        written.append((HEADERS_NAME, (stage / HEADERS_NAME).stat().st_size))
    written.sort(key=lambda pair: (-pair[1], pair[0]))
    return SiteReport(out, written)


def format_report(report: SiteReport, top: int = 10) -> str:
    """Total size and the biggest files as a small table."""
    width = max(len(name) for name, _ in report.files[:top])
    lines = [f"wrote {report.out}/: {len(report.files)} files, {_mb(report.total_bytes)}", "", f"{'file':<{width}}  {'size':>10}"]
    lines += [f"{name:<{width}}  {_mb(size):>10}" for name, size in report.files[:top]]
    if len(report.files) > top:
        rest = report.files[top:]
        lines.append(f"{f'... {len(rest)} more':<{width}}  {_mb(sum(s for _, s in rest)):>10}")
    return "\n".join(lines)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
