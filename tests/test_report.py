"""`evsim report`: one self-contained HTML page, rendered in a real headless browser (Chromium);
the tables a reader sees carry the numbers of the JSON files, recomputed here."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from html.parser import HTMLParser

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from _evaldocs import make_doc, wilson  # noqa: E402
from evsim.cli import main  # noqa: E402
from evsim.plots import load_results, report_html  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


class Page(HTMLParser):
    """Tables (id → rows of cell texts), inline <svg> count, <img> sources, external references."""

    def __init__(self):
        super().__init__()
        self.tables, self.svgs, self.images, self.external = {}, 0, [], []
        self._table = None
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and not a[key].startswith("data:") and not a[key].startswith("#"):
                self.external.append(a[key])
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id") or f"table{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "svg":
            self.svgs += 1
        elif tag == "img":
            self.images.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    return page


@pytest.fixture
def result_files(tmp_path):
    docs = {
        "event.json": make_doc(n=80, n_wrong=3, latency_us=300_000.0, fraction=1.0),
        "cut.json": make_doc(n=80, n_wrong=6, seed=1, latency_us=40_000.0, fraction=0.25,
                             cutoff={"mode": "topk", "table": [None, 3.0, 5.0], "bin_width_us": 10_000.0}),
        "clock1ms.json": make_doc(n=80, n_wrong=5, seed=2, mode="clock", profile="sinabs", bin_us=1000.0,
                                  fraction=1.0, latency_us=301_000.0),
        "clock20ms.json": make_doc(n=80, n_wrong=4, seed=3, mode="clock", profile="sinabs", bin_us=20_000.0,
                                   fraction=1.0, latency_us=320_000.0, complete=False),
    }
    docs["cut.json"].pop("samples")  # an older file without per-sample records
    paths = []
    for name, doc in docs.items():
        path = tmp_path / name
        path.write_text(json.dumps(doc))
        paths.append(path)
    return paths


def expected_rows(paths):
    """What the summary table must show, computed from the raw JSON."""
    rows = []
    for p in paths:
        d = json.loads(p.read_text())
        if "samples" in d:
            n, k = len(d["samples"]), sum(s["correct"] for s in d["samples"])
        else:
            n = d["n_samples"]
            k = round(d["accuracy"] * n)
        lo, hi = wilson(k, n)
        rows.append({"file": p.name, "samples": str(n), "accuracy": f"{100 * k / n:.2f} %",
                     "interval": f"{100 * lo:.1f} % – {100 * hi:.1f} %",
                     "events": f"{100 * d['mean_events_fraction']:.1f} %",
                     "latency": f"{d['mean_latency_us'] / 1000:.1f} ms",
                     "complete": "yes" if d["complete"] else "no (interrupted)"})
    return rows


def check_page(page: Page, paths):
    summary = page.tables["summary"]
    head = summary[0]
    body = [dict(zip(head, row)) for row in summary[1:]]
    assert len(body) == len(paths)
    for row, want in zip(body, expected_rows(paths)):
        assert row["file"] == want["file"]
        assert row["samples"] == want["samples"]
        assert row["accuracy"] == want["accuracy"]
        assert row["95 % interval"] == want["interval"]
        assert row["events consumed"] == want["events"]
        assert row["mean latency"] == want["latency"]
        assert row["complete"] == want["complete"]
    # per-class table of the first file: counts per class from its samples
    doc = json.loads(paths[0].read_text())
    classes = page.tables["classes-0"]
    for c, row in enumerate(classes[1:]):
        mine = [s for s in doc["samples"] if s["label"] == c]
        assert row[:3] == [str(c), str(len(mine)), str(sum(s["correct"] for s in mine))]
    assert "classes-1" not in page.tables  # the file without samples has no per-class table
    # provenance: every file with the sha256 of its bytes
    prov = page.tables["provenance"]
    digests = [row[1] for row in prov[1:]]
    assert digests == [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]
    # figures inline as SVG: accuracy, temporal flexibility, and the per-class figures of the three
    # files with per-sample records
    assert page.svgs == 2 + 3
    assert page.external == []


def test_report_html_tables_equal_the_json(result_files):
    text = report_html(load_results(result_files))
    check_page(parse(text), result_files)
    assert "1 of 4 results come from interrupted evaluations" in " ".join(text.split())


def _browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no headless browser: none of {', '.join(BROWSERS)} is on PATH (apt-get install chromium)")


def _chromium(browser, tmp_path, *args) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_report_renders_in_headless_chromium(result_files, tmp_path):
    browser = _browser()
    out = tmp_path / "report.html"
    assert main(["report", *map(str, result_files), "-o", str(out)]) == 0
    url = out.resolve().as_uri()
    dom = _chromium(browser, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    check_page(parse(dom.stdout), result_files)  # what the browser built, not the file
    shot = tmp_path / "shot.png"
    run = _chromium(browser, tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", url)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    img = mpimg.imread(str(shot))[..., :3]
    # the page is drawn: text and figures give many distinct colours, not a blank page
    colours = np.unique((img.reshape(-1, 3) * 255).round().astype(np.uint8), axis=0)
    assert len(colours) > 50
    assert np.mean(img < 0.9) > 0.01


def test_report_cli_errors(result_files, tmp_path, capsys):
    assert main(["report", str(result_files[0]), "-o", str(tmp_path / "r.pdf")]) == 2
    assert "is not supported (use .html" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json"), "-o", str(tmp_path / "r.html")]) == 2
    assert "missing.json does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["report", str(bad), "-o", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("evsim: error: ") and "bad.json" in err and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()
