"""The HTML batch report: built from constructed results and checked by parsing what a browser would."""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from helpers.report_examples import example_batch, failed, result

from sparsesync_cli import __version__
from sparsesync_cli.clock import CLOCK, SIGN
from sparsesync_cli.errors import AvsyncError
from sparsesync_cli.output.html import (
    IN_SYNC_SEC,
    render_html_report,
    status,
    summary_counts,
    write_html_report,
)
from sparsesync_cli.output.records import read_jsonl

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
WHEN = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
SETTINGS = {"hop_sec": 5.0, "device": "cpu", "note": "<b>bold & 'quoted'</b>"}


class Page(HTMLParser):
    """Parses the page like a browser's tokenizer, recording structure errors and what we test."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.tbodies: list[dict] = []
        self.cards: dict[str, int] = {}
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []
        self._card: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "tbody" and "file" in (a.get("class") or "").split():
            self.tbodies.append(a)
        if tag == "div" and "card" in (a.get("class") or "").split():
            self._card = a["class"].split()[1]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):  # <rect .../> in inline SVG
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self._card and data.strip().isdigit():
            self.cards[self._card] = int(data.strip())
            self._card = None


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def batch() -> list[dict]:
    return example_batch()


@pytest.fixture(scope="module")
def html(batch) -> str:
    return render_html_report(batch, title="Nightly <QC>", settings=SETTINGS, generated_at=WHEN)


def test_page_parses_with_balanced_tags_and_unique_ids(html):
    page = parse(html)
    assert page.errors == []
    assert page.stack == []
    assert len(page.ids) == len(set(page.ids))  # several inline SVGs share one id space
    assert html.startswith("<!DOCTYPE html>")
    assert ("html", {"lang": "en"}) in page.tags


def test_every_file_appears_with_its_verdict_and_sort_keys(batch, html):
    page = parse(html)
    text = " ".join(page.text)
    assert len(page.tbodies) == len(batch)
    for r, body in zip(batch, page.tbodies, strict=True):
        name = r["path"].rsplit("/", 1)[-1]
        assert name in text
        assert body["data-name"] == name
        if r["ok"]:
            assert r["offset_words"] in text
            assert float(body["data-offset"]) == r["offset_sec"]
            assert float(body["data-abs"]) == abs(r["offset_sec"])
            assert float(body["data-conf"]) == r["confidence"]
        else:
            assert body["data-offset"] == body["data-abs"] == body["data-conf"] == ""
    drifting = next(b for b in page.tbodies if b["data-name"] == "lecture_drifting.mp4")
    assert float(drifting["data-drift"]) == 0.25
    assert "+0.25" in text


def test_summary_counts_and_the_in_sync_threshold(batch, html):
    assert parse(html).cards == {"checked": 8, "in-sync": 1, "out-of-sync": 6, "failed": 1}
    assert summary_counts(batch) == {"checked": 8, "in_sync": 1, "out_of_sync": 6, "failed": 1}
    # An expected-value aggregate need not sit on the grid: the line is half a class step.
    near = [result(f"n{v}.mp4", v) for v in (0.0, 0.08, -0.099, 0.1, -0.12)]
    assert [status(r) for r in near] == ["in sync", "in sync", "in sync", "out of sync", "out of sync"]
    assert pytest.approx(0.2 / 2) == IN_SYNC_SEC
    assert f"|offset| &lt; {IN_SYNC_SEC:g} s" in html


def test_failed_files_show_their_one_line_cause(html):
    page = parse(html)
    text = " ".join(page.text)
    cause = "/data/clips/broken.mp4: no audio stream"
    assert text.count(cause) == 2  # in its table row and in the Errors section
    assert "Errors" in text
    body = next(b for b in page.tbodies if b["data-name"] == "broken.mp4")
    assert "failed" in body["class"]


def test_maps_thumbnails_expand_to_full_maps_and_failed_files_have_none(batch, html):
    page = parse(html)
    buttons = [a for t, a in page.tags if t == "button" and "thumb" in (a.get("class") or "")]
    assert len(buttons) == sum(r["ok"] for r in batch)
    for b in buttons:
        assert b["aria-expanded"] == "false" and b["title"].startswith("Show or hide the full sync map of")
        detail = next(a for t, a in page.tags if t == "tr" and a.get("id") == b["aria-controls"])
        assert "hidden" in detail
    svgs = re.findall(r"<svg .*?</svg>", html, flags=re.S)
    assert len(svgs) == 2 * len(buttons)  # a thumbnail and a full map per successful file
    for svg in svgs:
        ET.fromstring(svg)  # every inline map is well-formed XML on its own
    assert "no map" in " ".join(page.text)


def test_self_contained_no_external_urls(html):
    assert not re.search(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//""", html, flags=re.I)
    assert not re.search(r"""(src|href)\s*=""", html, flags=re.I)  # nothing to load at all
    assert "@import" not in html and "url(" not in html
    tags = {t for t, _ in parse(html).tags}
    assert not tags & {"link", "img", "iframe", "object", "embed"}
    # The only http string is the SVG namespace name, which is an identifier, never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", html)) == {"http://www.w3.org/2000/svg"}


def test_hostile_strings_are_escaped(html):
    assert "<Tom>" not in html and "<QC>" not in html and "<b>bold" not in html
    assert html.count("<script") == 1  # ours; the file named "...<script>.mp4" is text
    text = " ".join(parse(html).text)
    assert '<Tom> & "Jerry\'s" <script>.mp4' in text
    assert "Nightly <QC>" in text and "<b>bold & 'quoted'</b>" in text


def test_models_settings_sign_clock_version_and_time_are_stated(html):
    text = " ".join(parse(html).text)
    for needle in ("sparsesync-vggsound", "synchformer-vggsound", "22-09-21T21-00-52.pt", "hop_sec", "cpu"):
        assert needle in text
    assert SIGN in text and CLOCK in text
    assert f"avsync {__version__}" in text
    assert "2024-05-06T07:08:09+00:00" in text


def test_accessibility_basics(batch, html):
    page = parse(html)
    ths = [a for t, a in page.tags if t == "th"]
    assert all(a.get("scope") in ("col", "row") for a in ths)
    row_heads = [a for a in ths if a.get("scope") == "row" and "name" in (a.get("class") or "")]
    assert [a["title"] for a in row_heads] == [r["path"] for r in batch]
    # Every map is an image with a title as its first child (what screen readers announce).
    assert len(re.findall(r"<svg [^>]*role=\"img\"[^>]*>\s*<title>Sync map of ", html)) == html.count("<svg ")
    sortable = [a for a in ths if "data-sort" in a]
    assert {a["data-sort"] for a in sortable} >= {"name", "offset", "abs", "conf"}


def test_a_malformed_result_loses_its_map_not_the_report():
    bad = result("bad.mp4", 0.4)
    bad["windows"][0]["probs"] = [1.0]
    html = render_html_report([bad, result("good.mp4", 0.0)], generated_at=WHEN)
    text = " ".join(parse(html).text)
    assert "no map: a window has 1 class probabilities for a 21-class grid" in text
    assert html.count('class="thumb"') == 1


def test_empty_batch():
    page = parse(render_html_report([], generated_at=WHEN))
    assert page.cards == {"checked": 0, "in-sync": 0, "out-of-sync": 0, "failed": 0}
    assert page.errors == []


def test_write_html_report_atomically(tmp_path, batch):
    out = write_html_report(batch, tmp_path / "report.html", generated_at=WHEN)
    assert out.read_text(encoding="utf-8") == render_html_report(batch, generated_at=WHEN)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_a_jsonl_report_with_a_truncated_last_line_still_reads(tmp_path, batch):
    lines = [json.dumps(r) for r in batch]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_jsonl(path) == batch
    crashed = "\n".join(lines) + "\n" + lines[0][: len(lines[0]) // 2]
    path.write_text(crashed, encoding="utf-8")
    assert read_jsonl(path) == batch
    # Cut inside a multi-byte character: still only the last line is lost.
    path.write_bytes(("\n".join(lines[:2]) + "\n").encode() + '{"path": "é'.encode()[:-1])
    assert read_jsonl(path) == batch[:2]


def test_a_jsonl_report_damaged_elsewhere_is_refused(tmp_path, batch):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(batch[0]) + "\n{oops\n" + json.dumps(batch[1]) + "\n", encoding="utf-8")
    with pytest.raises(AvsyncError, match=r"results\.jsonl: line 2 is not an avsync\.result/1 record"):
        read_jsonl(path)
    path.write_text(json.dumps({"schema": "other/1"}) + "\n" + json.dumps(batch[0]) + "\n", encoding="utf-8")
    with pytest.raises(AvsyncError, match=r"line 1 is not an avsync\.result/1 record"):
        read_jsonl(path)
    with pytest.raises(AvsyncError, match=r"missing\.jsonl: cannot read the report"):
        read_jsonl(tmp_path / "missing.jsonl")
    failed_only = tmp_path / "f.jsonl"
    failed_only.write_text(json.dumps(failed("x.mp4", "x.mp4: no video stream")) + "\n", encoding="utf-8")
    assert read_jsonl(failed_only)[0]["error"] == "x.mp4: no video stream"
