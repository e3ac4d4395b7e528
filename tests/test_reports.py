"""JSONL and CSV reports: appending, crash tolerance, resume, CSV columns."""

from __future__ import annotations

import csv
import json
import os

import pytest

from sparsesync_cli.analysis.aggregate import aggregate
from sparsesync_cli.analysis.results import ModelRecord, SyncResult, WindowResult
from sparsesync_cli.errors import MediaError, UsageError
from sparsesync_cli.output.records import (
    CSV_FIELDS,
    CsvWriter,
    JsonlWriter,
    done_keys,
    file_key,
    latest_results,
    read_jsonl,
)

MODEL = ModelRecord("synchformer-audioset", "synchformer")
GRID = [round(-2 + 0.2 * i, 1) for i in range(21)]


def ok_result(path, offset_class=12):
    logits = [0.0] * 21
    logits[offset_class] = 8.0
    w = WindowResult.from_logits(0.0, 0.0, logits, GRID)
    agg = aggregate([w.probs], GRID, [0.0])
    return SyncResult.from_aggregate(path, model=MODEL, grid=GRID, windows=[w], aggregate=agg)


def failed_result(path):
    return SyncResult.failed(path, MediaError("no audio stream", path), model=MODEL, grid=GRID)


@pytest.fixture
def videos(tmp_path):
    paths = []
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        p = tmp_path / name
        p.write_bytes(name.encode() * 10)
        paths.append(p)
    return paths


def test_jsonl_appends_one_line_per_file(tmp_path, videos):
    report = tmp_path / "out.jsonl"
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[0]))
        r.append(failed_result(videos[1]))
    lines = report.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[0])["path"] == str(videos[0])
    records = read_jsonl(report)
    assert [x["ok"] for x in records] == [True, False]
    # Each line is durable as soon as append returns: another reader sees it mid-batch.
    r = JsonlWriter(report)
    r.append(ok_result(videos[2]))
    assert len(read_jsonl(report)) == 3
    r.close()


def test_a_crash_mid_line_keeps_earlier_lines_and_is_repaired_on_resume(tmp_path, videos):
    report = tmp_path / "out.jsonl"
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[0]))
        r.append(ok_result(videos[1]))
    whole = report.read_bytes()
    partial = json.dumps(ok_result(videos[2]).to_dict()).encode()[:57]
    report.write_bytes(whole + partial)  # what a kill during the third write leaves
    assert [x["path"] for x in read_jsonl(report)] == [str(videos[0]), str(videos[1])]
    with JsonlWriter(report) as r:  # resuming cuts the partial line off, then appends
        r.append(ok_result(videos[2]))
    assert report.read_bytes().startswith(whole)
    assert [x["path"] for x in read_jsonl(report)] == [str(v) for v in videos]


def test_a_last_record_without_its_newline_is_kept(tmp_path, videos):
    report = tmp_path / "out.jsonl"
    report.write_text(json.dumps(ok_result(videos[0]).to_dict()))
    assert len(read_jsonl(report)) == 1
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[1]))
    assert len(read_jsonl(report)) == 2 and len(report.read_text().splitlines()) == 2


def test_a_file_that_is_not_a_report_is_refused_and_left_alone(tmp_path):
    other = tmp_path / "notes.txt"
    other.write_text("shopping list\neggs")
    with pytest.raises(UsageError, match=r"line 1 is not an avsync\.result/1 record"):
        JsonlWriter(other)
    assert other.read_text() == "shopping list\neggs"
    with pytest.raises(UsageError) as e:
        read_jsonl(other)
    assert str(other) in str(e.value)
    bad_middle = tmp_path / "bad.jsonl"
    bad_middle.write_text(json.dumps(ok_result(other).to_dict()) + "\n{oops\n" + "\n")
    with pytest.raises(UsageError, match="line 2"):
        read_jsonl(bad_middle)


def test_resume_skips_done_files_and_retries_failed_ones(tmp_path, videos, monkeypatch):
    report = tmp_path / "out.jsonl"
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[0]))
        r.append(failed_result(videos[1]))
    done = done_keys(report)
    assert file_key(videos[0]) in done
    assert file_key(videos[1]) not in done  # failed: retried
    assert file_key(videos[2]) not in done  # never seen
    # Same file reached by another spelling of its path still counts as done.
    monkeypatch.chdir(tmp_path)
    assert file_key("a.mp4") in done
    assert file_key(tmp_path / "." / "a.mp4") in done


def test_resume_checks_the_file_again_when_it_changed(tmp_path, videos):
    report = tmp_path / "out.jsonl"
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[0]))
    videos[0].write_bytes(b"re-encoded")  # size changes
    assert file_key(videos[0]) not in done_keys(report)
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[1]))
    st = videos[1].stat()
    os.utime(videos[1], (st.st_atime, st.st_mtime + 10))  # touched: mtime changes
    assert file_key(videos[1]) not in done_keys(report)


def test_resume_with_a_truncated_last_line(tmp_path, videos):
    report = tmp_path / "out.jsonl"
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[0]))
    with open(report, "ab") as f:
        f.write(json.dumps(ok_result(videos[1]).to_dict()).encode()[:100])
    done = done_keys(report)
    assert file_key(videos[0]) in done and file_key(videos[1]) not in done


def test_resume_per_model_and_missing_report(tmp_path, videos):
    report = tmp_path / "out.jsonl"
    with JsonlWriter(report) as r:
        r.append(ok_result(videos[0]))
    assert file_key(videos[0]) in done_keys(report, model=MODEL.name)
    assert done_keys(report, model="sparsesync-lrs3-3") == set()
    assert done_keys(tmp_path / "none.jsonl") == set()
    assert file_key(tmp_path / "none.mp4") is None


def test_latest_results_keeps_the_last_attempt_per_file(videos):
    first = failed_result(videos[0]).to_dict()
    other = ok_result(videos[1]).to_dict()
    second = ok_result(videos[0]).to_dict()
    assert latest_results([first, other, second]) == [second, other]


def test_csv_columns_and_values(tmp_path, videos):
    out = tmp_path / "out.csv"
    with CsvWriter(out) as c:
        c.add(ok_result(videos[0], offset_class=20))
        c.add(failed_result(videos[1]).to_dict())
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_FIELDS == (
        "path", "ok", "offset_sec", "offset_words", "confidence", "agreement",
        "drift_sec_per_min", "at_range_edge", "n_windows", "model", "error",
    )  # fmt: skip
    a, b = rows
    assert a["path"] == str(videos[0]) and a["ok"] == "true" and a["offset_sec"] == "2.0"
    assert a["offset_words"] == "audio at least 2.00 s early" and a["at_range_edge"] == "true"
    assert float(a["confidence"]) > 0.5 and a["agreement"] == "1.0" and a["drift_sec_per_min"] == ""
    assert a["n_windows"] == "1" and a["model"] == MODEL.name and a["error"] == ""
    assert b["ok"] == "false" and b["offset_sec"] == "" and b["error"] == "no audio stream"
    assert b["n_windows"] == "0"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".incomplete"] == []


def test_csv_is_written_even_when_the_batch_is_interrupted(tmp_path, videos):
    out = tmp_path / "out.csv"
    out.write_text("old report\n")
    with pytest.raises(KeyboardInterrupt), CsvWriter(out) as c:
        c.add(ok_result(videos[0]))
        raise KeyboardInterrupt
    rows = list(csv.DictReader(out.open(newline="")))
    assert [r["path"] for r in rows] == [str(videos[0])]


def test_csv_path_with_quotes_and_commas(tmp_path):
    odd = tmp_path / 'a, "b".mp4'
    odd.write_bytes(b"x")
    out = tmp_path / "out.csv"
    with CsvWriter(out) as c:
        c.add(failed_result(odd))
    assert next(csv.DictReader(out.open(newline="")))["path"] == str(odd)


def test_csv_into_a_missing_folder_is_a_usage_error(tmp_path):
    c = CsvWriter(tmp_path / "nope" / "out.csv")
    with pytest.raises(UsageError, match="cannot write the report"):
        c.close()
