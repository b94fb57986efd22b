#!/usr/bin/env python3
"""OHIF over Orthanc's DICOMweb, for bench/viewer_peers.sh's "ohif-orthanc" row: serves the same
prepared OHIF folder pacsbox serves at /ohif/ (web-ui/ohif/install.sh), with an app-config.js that
points at this origin's /dicom-web and /wado, and passes those on to Orthanc's DICOMweb plugin
(same origin, as pacsbox has it: no CORS in the way, no difference in what OHIF is configured to do).

    bench/ohif_orthanc.py OHIF_DIR ORTHANC_URL PORT      (loopback only; Ctrl-C or SIGTERM stops it)
"""

from __future__ import annotations

import http.client
import mimetypes
import re
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

OHIF = Path(sys.argv[1]).resolve()
ORTHANC = urllib.parse.urlsplit(sys.argv[2])
PORT = int(sys.argv[3])
REPO = Path(__file__).resolve().parent.parent
# pacsbox's own configuration, word for word, but for the name
CONFIG = (REPO / "web-ui" / "static" / "ohif-app-config.js").read_text().replace("'pacsbox'", "'orthanc'")
mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_a) -> None:  # quiet: the benchmark prints its own figures
        pass

    def do_GET(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith(("/dicom-web/", "/wado")):
            return self.proxy()
        if path == "/ohif/app-config.js":
            return self.send(200, "text/javascript", CONFIG.encode(), "no-cache")
        rel = path.removeprefix("/ohif").lstrip("/")
        f = (OHIF / rel).resolve()
        if not f.is_relative_to(OHIF) or ".." in rel:
            return self.send(404, "text/plain", b"no")
        if not f.is_file():
            # OHIF's client-side routes, as ohif.rs answers them
            if "." in rel.rsplit("/", 1)[-1]:
                return self.send(404, "text/plain", b"no such file")
            f = OHIF / "index.html"
        ctype = mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        cache = "no-cache" if f.name == "index.html" else "max-age=86400"
        self.send(200, ctype, f.read_bytes(), cache)

    def send(self, code: int, ctype: str, body: bytes, cache: str = "no-store") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def proxy(self) -> None:
        c = http.client.HTTPConnection(ORTHANC.hostname, ORTHANC.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "accept-encoding", "range")}
        c.request("GET", self.path, headers=headers)
        r = c.getresponse()
        body = r.read()
        # Orthanc writes its own absolute URLs (BulkDataURI) into the metadata: make them ours
        if "json" in (r.getheader("Content-Type") or "") and r.getheader("Content-Encoding") is None:
            body = re.sub(rb"https?://[^/\"]+/dicom-web/", f"http://127.0.0.1:{PORT}/dicom-web/".encode(), body)
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() in ("content-type", "content-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        c.close()


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
