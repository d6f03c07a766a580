"""The downloader against real HTTP servers on 127.0.0.1: resume, retry, checksum."""
import hashlib
import http.server
import threading
from typing import ClassVar

import numpy as np
import pytest

from blendphot.download import WebPageError, download
from blendphot.errors import DownloadError

PAYLOAD = np.random.default_rng(0).bytes(3 * 1024 * 1024 + 123)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


OTHER = np.random.default_rng(1).bytes(len(PAYLOAD))  # another file of the same size


class Handler(http.server.BaseHTTPRequestHandler):
    mode = "ok"  # ok | drop_once | corrupt | norange | webpage | noetag
    requests: ClassVar[list] = []
    if_ranges: ClassVar[list] = []
    files: ClassVar[dict] = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        cls = type(self)
        cls.requests.append(self.headers.get("Range"))
        cls.if_ranges.append(self.headers.get("If-Range"))
        if self.path not in cls.files:
            self.send_error(404)
            return
        payload = cls.files[self.path]
        etag = '"' + hashlib.sha256(payload).hexdigest()[:16] + '"'
        if self.headers.get("If-Range") not in (None, etag):  # changed since: the whole file
            del self.headers["Range"]
        if cls.mode == "webpage":  # a form page where a catalogue was expected
            page = b"<!DOCTYPE html><html><body><form>Select the CANDELS catalogue</form></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        body = bytearray(payload)
        if cls.mode == "corrupt":
            body[1000] ^= 0xFF
        start = 0
        rng = self.headers.get("Range")
        if rng and cls.mode != "norange":
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        if cls.mode != "noetag":
            self.send_header("ETag", etag)
        self.end_headers()
        chunk = bytes(body[start:])
        if cls.mode == "drop_once" and len(cls.requests) == 1:
            self.wfile.write(chunk[: len(chunk) // 3])  # then the connection drops
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def server():
    Handler.requests, Handler.if_ranges = [], []
    Handler.files = {"/mosaic_drz.fits": PAYLOAD, "/other_drz.fits": OTHER}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_plain_download_verified(server, tmp_path):
    Handler.mode = "ok"
    out = download(f"{server}/mosaic_drz.fits", tmp_path / "m.fits", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD and not (tmp_path / "m.fits.part").exists()


def test_resumes_after_a_cut(server, tmp_path):
    Handler.mode = "drop_once"
    out = download(f"{server}/mosaic_drz.fits", tmp_path / "m.fits", sha256=SHA, backoff=0.01, progress=False)
    assert out.read_bytes() == PAYLOAD
    assert Handler.requests[0] is None and Handler.requests[1].startswith("bytes=1")  # resumed, not restarted


def test_server_without_range_support_restarts_cleanly(server, tmp_path):
    Handler.mode = "norange"
    (tmp_path / "m.fits.part").write_bytes(PAYLOAD[:5000])
    out = download(f"{server}/mosaic_drz.fits", tmp_path / "m.fits", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD


def test_corrupt_file_fails_and_leaves_nothing(server, tmp_path):
    Handler.mode = "corrupt"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(f"{server}/mosaic_drz.fits", tmp_path / "m.fits", sha256=SHA, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_missing_file_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server}/nope.fits", tmp_path / "n.fits", progress=False)
    assert not (tmp_path / "n.fits").exists()


def test_unreachable_server_gives_up_after_retries(tmp_path):
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download("http://127.0.0.1:9/x.fits", tmp_path / "x.fits", retries=1, backoff=0.01, progress=False)


def test_a_web_page_is_refused_at_once(server, tmp_path):
    Handler.mode = "webpage"
    with pytest.raises(WebPageError, match="serves a web page \\(text/html\\), not a data file"):
        download(f"{server}/mosaic_drz.fits", tmp_path / "cat.fits", backoff=10, progress=False)
    assert len(Handler.requests) == 1 and list(tmp_path.iterdir()) == []  # no retry, nothing left


def test_a_web_page_file_url_is_refused(tmp_path):
    page = tmp_path / "form.html"
    page.write_text("<!doctype html>\n<html><body>form</body></html>")
    with pytest.raises(WebPageError, match="form.html serves a web page"):
        download(page.as_uri(), tmp_path / "out/cat.fits", progress=False)


def _cut(url, dest):
    """A download cut after a third of the file, as a killed job leaves it."""
    Handler.mode = "drop_once"
    with pytest.raises(DownloadError, match="partial file .* is kept"):
        download(url, dest, retries=0, progress=False)
    assert 0 < dest.with_name(dest.name + ".part").stat().st_size < len(PAYLOAD)
    Handler.mode = "ok"


def test_a_part_of_another_url_is_never_resumed(server, tmp_path, capsys):
    """The URL changed after a cut (checksum null, as shipped): the new file is fetched whole,
    not appended to the old one's first third."""
    _cut(f"{server}/mosaic_drz.fits", tmp_path / "m.fits")
    out = download(f"{server}/other_drz.fits", tmp_path / "m.fits", progress=False)
    assert out.read_bytes() == OTHER
    assert Handler.requests[-1] is None and "discarding the partial download" in capsys.readouterr().out
    assert not (tmp_path / "m.fits.part.json").exists()


def test_a_file_changed_on_the_server_since_the_cut_is_fetched_whole(server, tmp_path):
    _cut(f"{server}/mosaic_drz.fits", tmp_path / "m.fits")
    Handler.files["/mosaic_drz.fits"] = OTHER  # a new version at the same URL
    out = download(f"{server}/mosaic_drz.fits", tmp_path / "m.fits", progress=False)
    assert out.read_bytes() == OTHER
    assert Handler.requests[-1].startswith("bytes=") and Handler.if_ranges[-1]  # asked to resume, if unchanged


def test_a_part_that_nothing_identifies_starts_again(server, tmp_path):
    Handler.mode = "noetag"  # no ETag, no Last-Modified: a resumed part could be anything
    (tmp_path / "m.fits.part").write_bytes(PAYLOAD[:5000])
    out = download(f"{server}/mosaic_drz.fits", tmp_path / "m.fits", sha256=SHA, progress=False)
    assert out.read_bytes() == PAYLOAD and Handler.requests == [None]
