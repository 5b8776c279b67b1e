"""LibriSpeech LM resources (local/download_lm.sh): md5 check and resumed downloads, served by a
local HTTP server on 127.0.0.1 that honours Range requests as openslr's does. Nothing leaves the machine."""

import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import copy_recipe


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    requests = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        type(self).requests.append((self.path, rng))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data) and rng:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www" / "resources" / "11"
    root.mkdir(parents=True)
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(tmp_path / "www"), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    _RangeHandler.requests = []
    yield root, f"http://127.0.0.1:{httpd.server_port}/resources/11"
    httpd.shutdown()


def _md5(p):
    return hashlib.md5(Path(p).read_bytes()).hexdigest()


def test_download_lm_resumes_and_checks_md5(tmp_path, server):
    root, url = server
    recipe = copy_recipe("librispeech", tmp_path / "repo")
    arpa = "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1\t</s>\n-99\t<s>\t-0.3\n-0.5\tHELLO\t-0.2\n\n" \
           "\\2-grams:\n-0.1\t<s> HELLO\n\n\\end\\\n" + "\n" * 20000
    (root / "3-gram.pruned.1e-7.arpa.gz").write_bytes(gzip.compress(arpa.encode()))
    (root / "librispeech-lexicon.txt").write_text("HELLO\tHH AH L OW\nWORLD'S\tW ER L D Z\n")
    sums = tmp_path / "md5sum.txt"
    sums.write_text("".join(f"{_md5(root / f)}  {f}\n" for f in ("3-gram.pruned.1e-7.arpa.gz", "librispeech-lexicon.txt")))
    files = "3-gram.pruned.1e-7.arpa.gz librispeech-lexicon.txt"
    # an interrupted earlier download: the first bytes are there
    dl = recipe / "downloads" / "lm"
    dl.mkdir(parents=True)
    full = (root / "3-gram.pruned.1e-7.arpa.gz").read_bytes()
    (dl / "3-gram.pruned.1e-7.arpa.gz").write_bytes(full[:100])
    cmd = ["local/download_lm.sh", "--lm-files", files, "--url-base", url, "--md5-list", str(sums)]
    p = subprocess.run(cmd, cwd=recipe, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert (dl / "3-gram.pruned.1e-7.arpa.gz").read_bytes() == full
    assert ("/resources/11/3-gram.pruned.1e-7.arpa.gz", "bytes=100-") in _RangeHandler.requests  # resumed
    assert (dl / "librispeech-lexicon.txt.md5ok").exists() and (dl / "3-gram.pruned.1e-7.arpa.gz.md5ok").exists()
    # a rerun fetches nothing
    _RangeHandler.requests = []
    p = subprocess.run(cmd, cwd=recipe, capture_output=True, text=True)
    assert p.returncode == 0 and _RangeHandler.requests == [] and "skipping" in p.stderr
    # a complete file put there by hand (no marker): checked, not fetched
    (dl / "librispeech-lexicon.txt.md5ok").unlink()
    p = subprocess.run(cmd[:-2] + ["--md5-list", str(sums), "--url-base", "http://127.0.0.1:1/nowhere"], cwd=recipe,
                       capture_output=True, text=True)
    assert p.returncode == 0 and "md5 matches" in p.stderr and (dl / "librispeech-lexicon.txt.md5ok").exists()
    # a file whose md5 is not the official one: an error naming it, no marker
    (root / "4-gram.arpa.gz").write_bytes(b"not the official 4-gram")
    p = subprocess.run(["local/download_lm.sh", "--lm-files", "4-gram.arpa.gz", "--url-base", url], cwd=recipe,
                       capture_output=True, text=True)
    assert p.returncode != 0
    assert "downloads/lm/4-gram.arpa.gz: md5 " in p.stderr and "expected 6abdcd5b055bd482e4f9defe91d40408" in p.stderr
    assert not (dl / "4-gram.arpa.gz.md5ok").exists()
    p = subprocess.run(["local/download_lm.sh", "--lm-files", "5-gram.arpa.gz"], cwd=recipe, capture_output=True, text=True)
    assert p.returncode != 0 and "unknown LibriSpeech LM file '5-gram.arpa.gz'" in p.stderr
    # the LM stage on the downloaded files: a lexicon of the official word list in the model's tokens
    tokens = recipe / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\n<space>\n" + "".join(c + "\n" for c in sorted(set("HELOWRD"))))
    env = dict(os.environ)
    p = subprocess.run([sys.executable, "-m", "asr_gr.bin.make_lm", "--arpa", str(dl / "3-gram.pruned.1e-7.arpa.gz"),
                        "--words", str(dl / "librispeech-lexicon.txt"), "--token-list", str(tokens),
                        "--out-dir", str(recipe / "data" / "lm" / "char")], cwd=recipe, capture_output=True,
                       text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert (recipe / "data" / "lm" / "char" / "lexicon.txt").read_text() == "HELLO H E L L O\n"  # ' not a token
