"""The docs site's browser check (scripts/docs.py `check`) finds what it promises to find, on a hand-made site."""
import base64, io
from pathlib import Path

import pytest

from conftest import docs_script


def _png() -> str:
    from PIL import Image
    buf = io.BytesIO(); Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _page(title: str, body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


def test_check_reports_each_kind_of_problem(tmp_path):
    docs = docs_script()
    if not docs.chromium(): pytest.skip("no Chromium: `apt-get install chromium` (Debian; .ci/run installs it)")
    site, good, broken = tmp_path/"site", _png(), base64.b64encode(b"\x89PNG\r\n\x1a\nnot really").decode()
    site.mkdir()
    pages = {
        "index.html": '<h1 id="top">home</h1><a href="clean.html#settings">ok</a> <a href="gone.html">gone</a> '
                      '<a href="train.html#nowhere">no anchor</a> <a href="https://example.org/x">external</a> '
                      f'<a href="{docs.DOC_URL}clean.html">the online docs</a> <a href="#top">top</a>',
        "clean.html": f'<h2 id="settings">Settings</h2><img src="data:image/png;base64,{good}">',
        "train.html": f'<img src="data:image/png;base64,{broken}">',  # a plot that does not decode
        "eval.html": "<pre>ValueError    Traceback (most recent call last)</pre>",  # and no plot at all
        "orchestrate.html": f'<img src="data:image/png;base64,{good}"><script>undefined_function()</script>',
    }
    for name, body in pages.items(): (site/name).write_text(_page(name, body))
    report = docs.check(site)
    assert sorted(report["problems"]) == sorted([
        "index.html: broken link gone.html",
        "index.html: broken anchor train.html#nowhere",
        f"index.html: a link to the online docs, not this site: {docs.DOC_URL}clean.html",
        "eval.html: an output shows a traceback",
        "train.html: no plot image that decodes",
        "eval.html: no plot image that decodes",
        f"script error: {(site/'orchestrate.html').as_uri()}: undefined_function is not defined",
    ]), report["problems"]
    assert report["pages"] == 5 and report["links"] == 6
    assert sorted(Path(p).name for p in report["screenshots"]) == ["clean.png", "home.png"]
