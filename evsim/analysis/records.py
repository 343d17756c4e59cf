"""Per-sample evaluation records and the files that hold them.

A *record* is the result (docs/SEMANTICS.md#cli-outputs) of one sample, a plain JSON-able dict keyed by the sample's
``index`` (its position in the dataset), so records can arrive in any order and the final
document is still in sample order. Besides the figures of the run, a record carries the sample's
*anytime digest* (:func:`anytime_digest`): the few points of its output trajectory that the
anytime summary needs, so aggregates never need the trajectories themselves (memory stays flat in
the number of samples) and a resumed run rebuilds them from the records on disk.

A sample that cannot be evaluated (unreadable recording, bad events) gives an *error record*
``{"index", "path", "label", "error"}`` instead.

Files:

* the records file ``<output>.records.jsonl`` (JSON lines, append-only): a header line (model
  hash, options, data), then one record per line, each written with a single ``write`` and
  flushed. A process killed at any moment leaves at most a truncated last line, which
  :func:`read_records_file` ignores; it is the state :func:`evsim.analysis.evaluate.evaluate`
  resumes from and is removed once the final document is written.
* the CSV (``--csv``): one row per finished sample, appended and flushed; rewritten in sample
  order at the end.
"""

from __future__ import annotations

import csv
import errno
import glob
import io
import json
import os
from pathlib import Path

import numpy as np
from numba import njit

from ..errors import OptionError, shown

__all__ = ["SAMPLE_FIELDS", "sample_record", "error_record", "anytime_digest", "RecordsFile", "read_records_file",
           "record_index",
           "records_path_for", "RecordLines", "compact_record", "summary_record", "plain_record", "write_json_atomic",
           "dumps_document", "document_parts", "dumps_record", "csv_row", "write_csv", "CsvRows",
           "json_default"]

SAMPLE_FIELDS = ["index", "path", "label", "prediction", "correct", "decision_time_us", "events_consumed",
                 "events_total", "synops", "spikes_per_node", "output_counts", "confidence", "oct_us", "status"]

#: what the aggregates (:func:`evsim.analysis.aggregate.summarise`) read of a record: an evaluation
#: whose records are in a file keeps only these of each finished sample in memory
SUMMARY_FIELDS = ("index", "label", "prediction", "correct", "decision_time_us", "events_consumed", "events_total",
                  "synops", "status", "oct_us", "anytime")

#: /2: the anytime digest's peaks as columns (/1: one row per peak)
RECORDS_FORMAT = "evsim-eval-records/2"


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------


def _number(v):
    v = float(v)
    return int(v) if v.is_integer() else v


def sample_record(path, label, result, trajectory=None, *, index: int | None = None, compact: bool = False) -> dict:
    """The docs/SEMANTICS.md#cli record of one sample (``trajectory``: the uncut output trajectory, for the
    oracle cutoff time and the anytime digest; None when anytime analysis is off). ``compact``:
    the digest's columns as numpy arrays (:func:`compact_record`), as an evaluation keeps them."""
    record = {
        "index": index,
        "path": str(path),
        "label": None if label is None else int(label),
        "prediction": result.prediction,
        "correct": bool(label is not None and result.prediction == label),
        "decision_time_us": result.decision_time_us,
        "events_consumed": result.events_consumed,
        "events_total": result.events_total,
        "synops": result.synops,
        "spikes_per_node": result.spikes_per_node,
        "output_counts": [_number(v) for v in np.asarray(result.output)],
        "confidence": result.confidence,
        "oct_us": None,
        "status": result.status,
    }
    if index is None:
        del record["index"]
    if trajectory is not None:
        record["anytime"], record["oct_us"] = _digest_and_oct(trajectory, as_arrays=compact)
    return record


#: the anytime digest's columns and their dtypes in a compact record
_DIGEST_COLUMNS = (("flip_t_us", np.float64), ("flip_events", np.int64))
_PEAK_COLUMNS = (("confidence", np.float64), ("t_us", np.float64), ("events", np.int64), ("correct", np.bool_))


def compact_record(record: dict) -> dict:
    """``record`` with its anytime digest's columns as numpy arrays: what an evaluation keeps of
    every finished sample until its end and what a worker sends to the client. A cnn-sized output
    gives hundreds of peaks per sample, ~100 bytes each as Python lists against 25 as arrays, and
    arrays cross a process boundary as one buffer each. Encoded by :func:`dumps_record` (and
    :func:`json_default`) exactly as the lists are; a digest not of the expected shape (a hostile
    file being resumed) is left as it is."""
    digest = record.get("anytime")
    if not isinstance(digest, dict) or not isinstance(digest.get("peaks"), dict):
        return record
    try:
        compact = {**digest, **{k: np.asarray(digest[k], dtype=t) for k, t in _DIGEST_COLUMNS},
                   "peaks": {k: np.asarray(digest["peaks"][k], dtype=t) for k, t in _PEAK_COLUMNS}}
    except (KeyError, TypeError, ValueError, OverflowError):
        return record
    return {**record, "anytime": compact}


def summary_record(record: dict) -> dict:
    """What an evaluation keeps in memory of a finished sample whose record is in its records file:
    the :data:`SUMMARY_FIELDS` of a sample record (the path, spikes per node and output counts
    stay on disk, ~1 KB per sample for a deep network), an error record whole (the document lists
    errors)."""
    if "error" in record:
        return record
    return {k: record[k] for k in SUMMARY_FIELDS if k in record}


def plain_record(record: dict) -> dict:
    """``record`` with the arrays of a :func:`compact_record` as lists again (what the API returns)."""
    digest = record.get("anytime")
    if not isinstance(digest, dict) or not isinstance(digest.get("peaks"), dict):
        return record
    return {**record, "anytime": _plain_digest(digest)}


def _plain_digest(digest: dict) -> dict:
    as_list = lambda v: v.tolist() if isinstance(v, np.ndarray) else v  # noqa: E731
    plain = {k: as_list(v) for k, v in digest.items()}
    plain["peaks"] = {k: as_list(v) for k, v in digest["peaks"].items()}
    return plain


def error_record(index: int, path, label, message: str) -> dict:
    return {"index": int(index), "path": str(path), "label": None if label is None else int(label), "error": message}


def anytime_digest(traj) -> dict:
    """What the anytime summary needs of one trajectory, exactly (not an approximation).

    * ``flip_t_us`` / ``flip_events``: time and events consumed at each output change where the
      prediction's correctness flips (starting from "wrong" before the first change). The
      prediction available at any time t is correct iff an odd number of flips happened at or
      before t — the same answer as looking up the last change at or before t.
    * ``peaks``: columns ``confidence``, ``t_us``, ``events``, ``correct``, one entry per change
      where the Top-K confidence (top1 − top2) exceeds every earlier one. A global threshold β is
      first reached at the first peak ≥ β, so these points replay any global Top-K cutoff exactly.
      Columns rather than one [confidence, t_us, events, correct] row per peak: a sample can have
      hundreds of peaks (a spike-count output's margin rises one spike at a time), and flat lists
      are 3-4x cheaper to encode, to send between processes and to read back.
    * ``duration_us``, ``final_correct``.
    """
    return _digest_and_oct(traj)[0]


@njit(cache=True)
def _change_rows(vectors, label, has_label, conf, correct, peak, flip):
    """Per output change (row of ``vectors``): the Top-K confidence top1 − top2 (the value itself
    for a single output; 0 without activity) into ``conf``; whether the prediction (argmax, ties
    to the lowest index; none without activity) is ``label`` into ``correct``; whether ``conf``
    exceeds 0 and every earlier value into ``peak`` (a NaN, as in ``np.maximum.accumulate``, ends
    all later peaks); whether ``correct`` differs from the row before (from "wrong" before the
    first row) into ``flip``. Returns the last row that is not correct (-1: none)."""
    n, k = vectors.shape
    running = 0.0
    previous = False
    last_wrong = -1
    for i in range(n):
        top1, top2, best = vectors[i, 0], -np.inf, 0
        active = top1 != 0
        for j in range(1, k):
            v = vectors[i, j]
            active = active or v != 0
            if v > top1:
                top1, top2, best = v, top1, j
            elif v > top2:
                top2 = v
        if not active:
            c = 0.0
        elif k > 1:
            c = top1 - top2
        else:
            c = top1
        conf[i] = c
        ok = has_label and (best if active else -1) == label
        correct[i] = ok
        peak[i] = c > running
        if running != running or c != c:
            running = np.nan
        elif c > running:
            running = c
        flip[i] = ok != previous
        previous = ok
        if not ok:
            last_wrong = i
    return last_wrong


def _digest_and_oct(traj, as_arrays: bool = False) -> tuple[dict, float | None]:
    """(anytime digest, oracle cutoff time) in one pass over the trajectory (the OCT rule of
    :func:`evsim.analysis.trajectory.oracle_cutoff_time`); with ``as_arrays``, the digest's columns
    are numpy arrays (:func:`compact_record`)."""
    n = len(traj.t_us)
    t_us = np.asarray(traj.t_us, dtype=float)
    events = np.asarray(traj.events, dtype=np.int64)
    oct_us, flips, final_correct = None, np.zeros(0, dtype=np.int64), False
    peaks = {"confidence": t_us[:0], "t_us": t_us[:0], "events": events[:0], "correct": np.zeros(0, np.bool_)}
    if n:
        vectors = np.ascontiguousarray(traj.vectors, dtype=float)
        conf = np.empty(n)
        correct, peak, flip = np.empty(n, np.bool_), np.empty(n, np.bool_), np.empty(n, np.bool_)
        has_label = traj.label is not None
        last_wrong = _change_rows(vectors, int(traj.label) if has_label else -1, has_label, conf, correct, peak,
                                  flip)
        k = np.flatnonzero(peak)
        peaks = {"confidence": conf[k], "t_us": t_us[k], "events": events[k], "correct": correct[k]}
        final_correct = bool(correct[-1])
        if has_label and final_correct:
            oct_us = float(t_us[last_wrong + 1])
        flips = np.flatnonzero(flip)
    digest = {
        "duration_us": float(traj.duration_us),
        "final_correct": final_correct,
        "flip_t_us": t_us[flips],
        "flip_events": events[flips],
        "peaks": peaks,
    }
    return (digest if as_arrays else _plain_digest(digest)), oct_us


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps_record(record: dict) -> str:
    """JSON text of one record, as the records file and the document's ``samples`` hold it."""
    return json.dumps(record, default=json_default)


def dumps_document(doc: dict, sample_texts=None) -> str:
    """JSON text of a document (:func:`document_parts` joined)."""
    return "".join(document_parts(doc, sample_texts))


def document_parts(doc: dict, sample_texts=None):
    """JSON text of a document, piece by piece: one line per top-level key and one line per entry
    of ``samples`` (readable, diffable, and written by the C encoder: ``indent`` would fall back to
    the slow pure-Python one). ``sample_texts``: anything with ``get(index)`` giving the
    :func:`dumps_record` text of a record encoded already (a dict of them, or the lines of a
    records file, :class:`RecordLines`), not encoded again. A writer that takes the pieces one by
    one never holds the whole text (16 MB for 1000 samples of a busy output)."""
    def one(value):
        return json.dumps(value, default=json_default)

    def sample(record):
        text = sample_texts.get(record.get("index")) if sample_texts is not None else None
        return one(record) if text is None else text

    yield "{\n"
    for k, (key, value) in enumerate(doc.items()):
        separator = ",\n" if k else ""
        if key == "samples" and isinstance(value, list) and value:
            yield f"{separator} {one(key)}: [\n  "
            for j, record in enumerate(value):
                yield (",\n  " if j else "") + sample(record)
            yield "\n ]"
        else:
            yield f"{separator} {one(key)}: {one(value)}"
    yield "\n}\n"


def replaceable_file(path) -> Path:
    """The file an atomic write to ``path`` replaces: the target of a symbolic link (the link
    stays), never a device, pipe or socket (``/dev/null`` replaced by a regular file would be
    lost to every other program).

    Raises:
        OSError: ``path`` exists and is not a regular file."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        raise OSError(errno.EINVAL, "it exists and is not a regular file", str(path))
    return target


def write_json_atomic(path, doc: dict, sample_texts=None) -> None:
    """Write ``doc`` (keys starting with ``_`` dropped) to a temporary file, then rename it over
    ``path``: a reader (or a kill) never sees half a document. ``sample_texts``: as in
    :func:`document_parts` (the text is written piece by piece)."""
    clean = {k: v for k, v in doc.items() if not str(k).startswith("_")}
    write_text_atomic(path, document_parts(clean, sample_texts))


def write_text_atomic(path, text, errors: str = "strict") -> None:
    """Write ``text`` (UTF-8; a string, or an iterable of strings written one after the other) to
    a temporary file next to ``path``, then rename it over ``path``: an existing file is only
    replaced once the new one is complete, never emptied by a failure half-way. ``errors``: how
    characters UTF-8 cannot encode (lone surrogates) are written."""

    def write(f):
        for part in [text] if isinstance(text, str) else text:
            f.write(part.encode("utf-8", errors))

    _write_bytes_atomic(replaceable_file(path), write)


def _write_bytes_atomic(path: Path, write) -> None:
    """Call ``write(f)`` on a temporary binary file next to ``path``, then rename it over
    ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def remove_stale_temporaries(path) -> None:
    """Remove the temporary files that :func:`write_json_atomic` and :func:`write_csv` leave
    next to ``path`` when a process is killed mid-write (``.NAME.PID.tmp`` of a process that no
    longer runs)."""
    path = Path(os.path.realpath(path))  # where they are written (a link's target)
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp"))
    except OSError:
        return
    for tmp in candidates:
        pid = tmp.name[len(path.name) + 2:-len(".tmp")]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # a running process is writing it
        except ProcessLookupError:
            pass
        except OSError:
            continue  # another user's running process
        try:
            tmp.unlink()
        except OSError:
            pass


def records_path_for(output) -> Path:
    """The records file that goes with an output file (``out.json`` → ``out.json.records.jsonl``)."""
    output = Path(output)
    return output.with_name(output.name + ".records.jsonl")


class RecordsFile:
    """Append-only JSON-lines file: a header, then one record per line."""

    def __init__(self, path, header: dict, *, append: bool = False, valid_bytes: int | None = None):
        self.path = Path(path)
        if append:
            self.file = open(self.path, "r+b")
            # drop a truncated last line left by a killed process
            self.file.truncate(valid_bytes if valid_bytes is not None else self.file.seek(0, 2))
            self.size = self.file.seek(0, 2)
        else:
            self.file = open(self.path, "wb")
            self.size = 0
            self.append({"format": RECORDS_FORMAT, **header})

    def append(self, record: dict) -> tuple[int, int]:
        return self.append_text(dumps_record(record))

    def append_text(self, text: str) -> tuple[int, int]:
        """Append a record already encoded by :func:`dumps_record` (one write, flushed); returns
        where its text is in the file (offset, length in bytes, without the newline)."""
        data = text.encode()
        self.file.write(data + b"\n")
        self.file.flush()
        offset = self.size
        self.size += len(data) + 1
        return offset, len(data)

    def close(self) -> None:
        self.file.close()


class RecordLines:
    """Where the text of each sample's record is in a records file (for samples ``0 .. n-1``;
    a later line of the same sample replaces an earlier one): what an evaluation writes its
    documents and its final CSV from instead of keeping every record's text in memory (16 bytes
    per sample here against 1-20 KB of text)."""

    def __init__(self, path, n: int):
        self.path = Path(path)
        self.offset = np.full(n, -1, dtype=np.int64)
        self.length = np.zeros(n, dtype=np.int64)
        self._file = None

    def set(self, index: int, where: tuple[int, int]) -> None:
        if 0 <= index < len(self.offset):
            self.offset[index], self.length[index] = where

    def get(self, index, default=None):
        """The record text of sample ``index`` (None if it has none)."""
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.offset) or self.offset[index] < 0:
            return default
        return self.get_bytes(index).decode()

    def get_bytes(self, index: int) -> bytes:
        """The bytes of sample ``index``'s line (without its newline), which it must have."""
        if self._file is None:
            self._file = open(self.path, "rb")
        return os.pread(self._file.fileno(), int(self.length[index]), int(self.offset[index]))

    def record(self, index: int) -> dict:
        """The record of sample ``index`` as written (parsed again)."""
        return json.loads(self.get(index))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def record_index(obj, where: str) -> int:
    """The sample index of a record read back for a resume, or OptionError naming ``where``."""
    index = obj.get("index") if isinstance(obj, dict) else None
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise OptionError(f"{where} is not a sample record (index {shown(index)}): the file is damaged; start over "
                          "without --resume", option="--resume")
    return index


def read_records_file(path, positions: dict | None = None) -> tuple[dict, dict, int]:
    """(header, {index: record}, bytes of complete lines) of a records file; a truncated last
    line (a killed writer) is ignored. ``positions``: a dict to fill with {index: (offset, length)}
    of each record's text (:class:`RecordLines`)."""
    path = Path(path)
    data = path.read_bytes()
    header, records, valid = None, {}, 0
    for line_number, line in enumerate(io.BytesIO(data), 1):
        if not line.endswith(b"\n"):
            break
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            break
        offset = valid
        valid += len(line)
        if header is None:
            found = obj.get("format") if isinstance(obj, dict) else None
            if not isinstance(found, str) or not found.startswith("evsim-eval-records/"):
                raise OptionError(f"{path} is not an evsim records file", option="--resume")
            if found != RECORDS_FORMAT:
                raise OptionError(f"{path} was written by another evsim version (format {shown(found)}, this one "
                                  f"reads {RECORDS_FORMAT}): start over without --resume", option="--resume")
            header = obj
        else:
            index = record_index(obj, f"{path}: line {line_number}")
            records[index] = obj
            if positions is not None:
                positions[index] = (offset, len(line) - 1)
    if header is None:
        raise OptionError(f"{path} has no header (nothing to resume)", option="--resume")
    return header, records, valid


def csv_row(record: dict) -> list:
    out = []
    for k in SAMPLE_FIELDS:
        v = record.get(k)
        if isinstance(v, (dict, list)):
            v = json.dumps(v)
        out.append("" if v is None else v)
    if "error" in record:
        out[SAMPLE_FIELDS.index("status")] = "error: " + record["error"]
    return out


#: a file name that is not valid UTF-8 (held as surrogate escapes) is written as \\udcXX in a CSV
CSV_ENCODING_ERRORS = "backslashreplace"


def _csv_bytes(row: list) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf).writerow(row)
    return buf.getvalue().encode("utf-8", CSV_ENCODING_ERRORS)


class CsvRows:
    """The CSV of an evaluation while it runs: the header and the rows of ``records`` (samples
    finished before, in sample order) written atomically, then one row appended per finished
    sample (one write, flushed), in completion order. Where each sample's row is goes into
    :attr:`lines` (a :class:`RecordLines` of the CSV), so that :meth:`put_in_sample_order` can put
    the rows in sample order by copying their bytes: no record is read back, parsed or formatted
    again. The file's bytes are those :func:`write_csv` writes for the same records."""

    def __init__(self, path, n: int, records=()):
        self.path = replaceable_file(path)
        self.lines = RecordLines(self.path, n)
        self.in_order, self._last = True, -1
        self.size = 0

        def rows(f):
            f.write(_csv_bytes(SAMPLE_FIELDS))
            self.size = f.tell()
            for record in records:
                self._append(f, record)

        _write_bytes_atomic(self.path, rows)
        self.file = open(self.path, "ab")

    def _append(self, f, record: dict) -> None:
        data = _csv_bytes(csv_row(record))
        f.write(data)
        index = int(record["index"])
        self.lines.set(index, (self.size, len(data)))
        self.size += len(data)
        self.in_order &= index > self._last
        self._last = index

    def append(self, record: dict) -> None:
        self._append(self.file, record)
        self.file.flush()

    def close(self) -> None:
        """Close the file, durably (as durable as a rewritten one)."""
        if not self.file.closed:
            os.fsync(self.file.fileno())
            self.file.close()

    def put_in_sample_order(self) -> None:
        """Rewrite the closed file (atomically) with its rows in sample order, each sample's
        last row, unless they already are."""
        if self.in_order:
            return

        def rows(f):
            f.write(_csv_bytes(SAMPLE_FIELDS))
            for i in np.flatnonzero(self.lines.offset >= 0):
                f.write(self.lines.get_bytes(i))

        try:
            _write_bytes_atomic(self.path, rows)  # (reads the rows from the file it replaces)
        finally:
            self.lines.close()


def write_csv(path, records) -> None:
    """Rewrite the CSV atomically with ``records`` (sample order; any iterable, taken one by one)."""
    CsvRows(path, 0, records).close()
