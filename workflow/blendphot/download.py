"""Resumable, verified downloads for the real survey files.

A download streams into ``<dest>.part`` with a progress bar, resumes after a cut with an
HTTP ``Range`` request, retries transient failures with exponential backoff, checks the
SHA-256 checksum, and only then renames the file onto ``dest``. A checksum mismatch deletes
the partial file; a network failure keeps it so that the next run resumes where it stopped.

A partial file is resumed only when it is known to be the start of the same file:
``<dest>.part.json`` records its URL, the server's validator (strong ETag, else
Last-Modified) and the full size, and the resumed request carries ``If-Range``, so that a
server whose file changed sends it whole. A part of another URL, or one without a
validator, is discarded and the download starts again: two files are never spliced.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from blendphot.errors import DownloadError

__all__ = ["WebPageError", "download", "run_download_file", "sha256sum"]


class WebPageError(DownloadError):
    """The URL serves a web page (HTML), not the data file it should."""


class _FileChanged(DownloadError):
    """The file changed on the server during a download: its partial copy is discarded."""


_CHUNK = 1 << 20


def sha256sum(path: str | os.PathLike, chunk: int = _CHUNK) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta_path(part).unlink(missing_ok=True)


def _resumable(url: str, part: Path) -> dict | None:
    """What is known of ``part`` when it may be resumed for ``url`` (its validator and the full
    size); None after discarding it when it may not: another URL's, or no validator."""
    if not part.exists():
        _meta_path(part).unlink(missing_ok=True)
        return None
    try:
        meta = json.loads(_meta_path(part).read_text())
    except (OSError, ValueError):
        meta = None
    if isinstance(meta, dict) and meta.get("url") == url and meta.get("validator"):
        return meta
    other = meta.get("url") if isinstance(meta, dict) else None
    why = f"it was downloaded from {other}" if other and other != url else \
        "nothing shows it is the start of the same file"
    print(f"{part}: discarding the partial download ({why}); starting again")  # the job's log, or the terminal
    _discard(part)
    return None


def _validator(headers) -> str | None:
    """The validator an ``If-Range`` may carry: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _fetch_once(url: str, part: Path, *, timeout: float, progress: bool) -> None:
    """One attempt: append to ``part`` from its current size when it is the start of the
    same file, else write it from the start. Raises on a short read."""
    from tqdm import tqdm

    meta = _resumable(url, part)
    have = part.stat().st_size if meta else 0
    headers = {"User-Agent": "blendphot"}
    if have:
        headers |= {"Range": f"bytes={have}-", "If-Range": meta["validator"]}
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the part file is already whole
            return
        raise
    with response:
        _refuse_web_page(url, response)
        status = getattr(response, "status", 200)
        length = response.headers.get("Content-Length")
        if have and status == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                raise DownloadError(f"{url}: server resumed at the wrong offset "
                                    f"({response.headers.get('Content-Range')!r}, expected {have})")
            if match.group(2) != "*" and meta.get("total") not in (None, int(match.group(2))):
                _discard(part)  # the same validator but another size: not the same file
                raise _FileChanged(f"{url}: the file's size changed from {meta['total']} to {match.group(2)} "
                                    "bytes during the download; its partial copy was discarded")
            mode = "ab"
        else:  # a full response (no range support, a changed file, or a fresh start)
            have, mode = 0, "wb"
        total = have + int(length) if length is not None else None
        if mode == "wb":  # what a later attempt needs to resume this file, and only this one
            _meta_path(part).write_text(json.dumps({"url": url, "validator": _validator(response.headers),
                                                    "total": total}))
        with open(part, mode) as fh, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                          desc=Path(url).name[:40], mininterval=2, disable=not progress) as bar:
            while block := response.read(_CHUNK):
                fh.write(block)
                bar.update(len(block))
    size = part.stat().st_size
    if total is not None and size != total:
        raise http.client.IncompleteRead(b"", total - size)


def _refuse_web_page(url: str, response) -> None:
    """Raise WebPageError when ``response`` is an HTML page (by its type or its first bytes)."""
    ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    head = response.peek(256) if hasattr(response, "peek") else b""
    start = head.lstrip()[:15].lower()
    if ctype in ("text/html", "application/xhtml+xml") or start.startswith((b"<!doctype html", b"<html")):
        raise WebPageError(f"{url} serves a web page ({ctype or 'HTML'}), not a data file")


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, retries: int = 5,
             timeout: float = 60.0, backoff: float = 1.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resumable, retried, verified, atomic).

    Raises
    ------
    DownloadError
        After ``retries`` failed attempts, on a client error (4xx), or when the checksum of
        the complete file differs from ``sha256`` (the partial file is then deleted).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout=timeout, progress=progress)
            break
        except WebPageError:
            _discard(part)
            raise
        except _FileChanged as exc:  # start again at once
            last = exc
            continue
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
            last = exc
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError, OSError) as exc:
            last = exc
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    else:
        raise DownloadError(f"{url}: download failed after {retries + 1} attempts ({type(last).__name__}: {last}); "
                            f"the partial file {part} is kept and the next run resumes it")
    if sha256:
        actual = sha256sum(part)
        if actual != sha256.lower():
            _discard(part)
            raise DownloadError(f"{dest}: checksum mismatch for {url} (expected sha256 {sha256}, got {actual}); "
                                "the corrupt file was deleted")
    os.replace(part, dest)
    _meta_path(part).unlink(missing_ok=True)
    return dest


def run_download_file(remote: dict, dest: str | os.PathLike, *, key: str, help: str | None = None) -> Path:
    """The download stages: one survey file of config key ``key`` (``remote``: its url and
    sha256). A web page instead of the file is an error naming the key, with ``help``."""
    from blendphot.errors import InputError

    try:
        path = download(remote["url"], dest, sha256=remote.get("sha256"))
    except WebPageError as exc:
        raise InputError(f"config key '{key}.url': {exc}. " + (help or "Check the URL in a browser.")) from None
    if not remote.get("sha256"):
        print(f"no checksum configured for {remote['url']} ({key}); sha256 of the file: {sha256sum(path)}")
    return path
