"""Load Kaggle "Optiver - Trading at the Close" CSV files into one validated frame of the Kaggle schema.

Files are recognised by their header: `train.csv` (with `target`), `test.csv` (without it) and
`revealed_targets.csv` (whose targets are joined back to the rows they belong to through
`revealed_date_id`/`seconds_in_bucket`/`stock_id`). The frame has the columns of `KAGGLE_COLUMNS`, in that
order, sorted by (date_id, seconds_in_bucket, stock_id), with the dtypes of `frame_dtypes()`:

* ids: stock_id/date_id/seconds_in_bucket int16, imbalance_buy_sell_flag int8, time_id int32;
* prices and sizes float64 by default (`float_dtype="float32"` halves their memory but then the WAP identity
  holds only to float32 precision); `target` is always float64 so that recomputed targets compare exactly;
* row_id: pandas string. Empty cells become NaN.

Validation is vectorised and reads the layer's one table of row rules, `closecast.market.schema.ROW_RULES`,
which the stream's `Snapshot` model reads too (flag in {-1, 0, 1},
seconds a multiple of 10 in 0..540, sizes >= 0, prices > 0 or null, finite numbers, time_id/row_id formulas).
A row that breaks a rule is left out of the frame and reported in `LoadReport` with its file, line and column
(nothing is dropped silently); so is a later row repeating the (date_id, seconds_in_bucket, stock_id) of an
earlier one (the first is kept). A file that cannot be read as the schema at all (malformed CSV, a row with more
or fewer fields than the header, missing column, a file of another schema) raises `KaggleFormatError`, which
names the file, line and column; so does any other failure while reading a file. Files are UTF-8 (a byte order
mark is allowed); header names are read without surrounding spaces.

Large files are read in chunks (`chunksize` rows) with explicit dtypes; `date_range` keeps only some dates.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from closecast.market.schema import (
    KAGGLE_COLUMNS,
    MAX_DATE_ID,
    MAX_STOCK_ID,
    PRICE_COLUMNS,
    ROW_RULES,
    SECONDS_STEP,
    SIZE_COLUMNS,
    SNAPSHOTS_PER_DAY,
    IntRule,
    NumberRule,
)
from closecast_ml.frames import INT_COLUMNS, FloatDtype, frame_dtypes

FileKind = Literal["train", "test", "revealed_targets"]

TEST_COLUMNS: tuple[str, ...] = tuple(c for c in KAGGLE_COLUMNS if c != "target")
REVEALED_COLUMNS: tuple[str, ...] = (
    "stock_id",
    "date_id",
    "seconds_in_bucket",
    "time_id",
    "revealed_target",
    "revealed_date_id",
    "revealed_time_id",
)
SCHEMAS: dict[FileKind, tuple[str, ...]] = {
    "train": KAGGLE_COLUMNS,
    "test": TEST_COLUMNS,
    "revealed_targets": REVEALED_COLUMNS,
}
DEFAULT_CHUNKSIZE = 500_000


class KaggleFormatError(ValueError):
    """A file that cannot be read as the Kaggle schema. `line`: 1-based (1 = the header); `column`: a name."""

    def __init__(self, file: str | Path, line: int | None, column: str | None, problem: str) -> None:
        self.file = str(file)
        self.line = line
        self.column = column
        self.problem = problem
        where = f"{self.file}, line {line}" if line is not None else self.file
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class BadCell:
    """One rule broken by one cell of one row (a row can break several)."""

    file: str
    line: int
    column: str
    value: str
    rule: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} column {self.column}={self.value!r}: {self.rule}"


@dataclass
class LoadReport:
    """What was read, what was kept, and every bad row (the first `max_reported` cells in detail)."""

    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_outside_date_range: int = 0
    bad_rows: int = 0
    bad_cells: list[BadCell] = field(default_factory=list)
    bad_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    revealed_rows_read: int = 0
    revealed_rows_blank: int = 0
    revealed_joined: int = 0
    revealed_unmatched: int = 0
    max_reported: int = 1000
    date_min: int | None = None
    date_max: int | None = None

    @property
    def ok(self) -> bool:
        return self.bad_rows == 0

    def add_bad(self, cells: Iterable[BadCell], count_by_rule: Counter[tuple[str, str]], rows: int) -> None:
        self.bad_rows += rows
        self.bad_counts.update(count_by_rule)
        for cell in cells:
            if len(self.bad_cells) >= self.max_reported:
                break
            self.bad_cells.append(cell)

    def see_dates(self, low: int | None, high: int | None) -> None:
        """Widen the span of the date_ids read (rows of train/test files, before any date range)."""
        if low is not None:
            self.date_min = low if self.date_min is None else min(self.date_min, low)
        if high is not None:
            self.date_max = high if self.date_max is None else max(self.date_max, high)

    def merge(self, other: LoadReport) -> None:
        self.files.extend(other.files)
        self.see_dates(other.date_min, other.date_max)
        self.rows_read += other.rows_read
        self.rows_loaded += other.rows_loaded
        self.rows_outside_date_range += other.rows_outside_date_range
        self.revealed_rows_read += other.revealed_rows_read
        self.revealed_rows_blank += other.revealed_rows_blank
        self.revealed_joined += other.revealed_joined
        self.revealed_unmatched += other.revealed_unmatched
        self.add_bad(other.bad_cells, other.bad_counts, other.bad_rows)

    def summary(self) -> str:
        text = (
            f"{self.rows_read} rows read, {self.rows_loaded} loaded, {self.bad_rows} bad rows left out"
            f", {self.rows_outside_date_range} outside the date range"
        )
        if self.revealed_rows_read:
            text += (
                f"; {self.revealed_rows_read} revealed targets read ({self.revealed_rows_blank} blank)"
                f", {self.revealed_joined} joined, {self.revealed_unmatched} without a row"
            )
        for cell in self.bad_cells[:10]:
            text += f"\n  {cell}"
        if len(self.bad_cells) > 10 or self.bad_rows > len(self.bad_cells):
            text += f"\n  ... ({sum(self.bad_counts.values())} bad cells in all)"
        return text


@dataclass
class KaggleData:
    frame: pd.DataFrame
    report: LoadReport


# --- headers -------------------------------------------------------------------------------------------


ENCODING = "utf-8-sig"  # UTF-8, with or without the byte order mark Excel writes


def read_header(path: str | Path) -> list[str]:
    try:
        with open(path, newline="", encoding=ENCODING) as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as error:
        raise KaggleFormatError(path, 1, None, f"not a UTF-8 text file ({error.reason})") from error
    except csv.Error as error:
        raise KaggleFormatError(path, 1, None, f"malformed CSV header: {error}") from error
    if not header:
        raise KaggleFormatError(path, 1, None, "empty file: expected a CSV header line")
    return [name.strip() for name in header]


def sniff_kind(path: str | Path) -> FileKind:
    """Which Kaggle file this is, from its header; `KaggleFormatError` if it is none of them."""
    header = read_header(path)
    for kind, columns in SCHEMAS.items():
        if set(header) == set(columns) and len(header) == len(columns):
            return kind
    # not an exact match: explain against the closest schema
    kind, columns = max(SCHEMAS.items(), key=lambda item: (len(set(item[1]) & set(header)), len(item[1])))
    missing = [c for c in columns if c not in header]
    extra = [c for c in header if c not in columns]
    duplicated = [c for c, n in Counter(header).items() if n > 1]
    expected = f"a Kaggle {kind} file ({','.join(columns)})"
    if len(set(header) & set(columns)) < 3:
        raise KaggleFormatError(
            path, 1, header[0], f"not a Kaggle file of any known schema; expected {expected}"
        )
    if duplicated:
        raise KaggleFormatError(
            path, 1, duplicated[0], f"column appears twice in the header; expected {expected}"
        )
    if missing:
        raise KaggleFormatError(path, 1, missing[0], f"missing column; expected {expected}")
    raise KaggleFormatError(path, 1, extra[0], f"unexpected column; expected {expected}")


# --- reading -------------------------------------------------------------------------------------------

_PARSER_LINE = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_PARSER_EOF_IN_STRING = re.compile(r"EOF inside string starting at row (\d+)")


def _line_text(path: str | Path, line: int) -> str | None:
    """The text of physical line `line` (1-based) of a file, or None past its end (error paths only)."""
    with open(path, newline="", encoding=ENCODING, errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if number == line:
                return text
    return None


def _open_quote_field(text: str) -> int | None:
    """Index of the field whose opening quote is not closed on this line (None if every quote closes)."""
    field_index, inside, opened = 0, False, None
    for char in text:
        if char == '"':
            inside = not inside
            if inside:
                opened = field_index
        elif char == "," and not inside:
            field_index += 1
    return opened if inside else None


class _FieldCounter:
    """Counts the fields of given lines of a file, reading it forward once (lines asked in increasing order).

    Only used for the rows whose last column the parser left empty: pandas pads a row with fewer fields than
    the header with NaN, so those are the only rows that can be short. Lines are physical lines, as the loader
    numbers rows (Kaggle files have no quoted line breaks).
    """

    def __init__(self, path: str | Path) -> None:
        self._path = path
        self._handle: TextIO | None = None
        self._line = 1  # the header has been read by the time a row is asked for

    def fields(self, line: int) -> int | None:
        """Number of fields on `line` (0 for an empty line), None past the end of the file."""
        if self._handle is None:
            self._handle = open(self._path, newline="", encoding=ENCODING, errors="replace")  # noqa: SIM115
            self._handle.readline()
        text = ""
        while self._line < line:
            text = self._handle.readline()
            self._line += 1
            if not text:
                return None
        text = text.rstrip("\r\n")
        if not text:
            return 0
        if '"' not in text:
            return text.count(",") + 1
        return len(next(csv.reader([text]), []))

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


def _chunks(
    path: str | Path, header: Sequence[str], chunksize: int, as_text: bool
) -> Iterable[tuple[int, pd.DataFrame]]:
    """(first line number, chunk) pairs; numeric columns float64 (or all text when `as_text`)."""
    dtypes = {c: ("str" if as_text or c == "row_id" else "float64") for c in header}
    reader = pd.read_csv(
        path,
        names=list(header),  # the stripped names of read_header, so " date_id" is read as date_id
        header=0,
        encoding=ENCODING,
        dtype=dtypes,
        chunksize=chunksize,
        skip_blank_lines=False,
        keep_default_na=False,
        na_values=[""],
        engine="c",
    )
    line = 2
    try:
        for chunk in reader:
            yield line, chunk
            line += len(chunk)
    except pd.errors.ParserError as error:
        match = _PARSER_LINE.search(str(error))
        if match:
            expected, bad_line, seen = (int(g) for g in match.groups())
            raise KaggleFormatError(
                path,
                bad_line,
                f"#{expected + 1} (after {header[-1]})",
                f"malformed CSV row: {seen} fields where the header has {expected}",
            ) from error
        eof = _PARSER_EOF_IN_STRING.search(str(error))
        if eof:
            line = int(eof.group(1)) + 1  # the parser's rows count the header as row 0
            text = _line_text(path, line)
            opened = _open_quote_field(text) if text is not None else None
            column = header[opened] if opened is not None and opened < len(header) else None
            raise KaggleFormatError(
                path, line, column, "malformed CSV: a quote opened here is never closed (EOF inside string)"
            ) from error
        raise KaggleFormatError(path, None, None, f"malformed CSV: {error}") from error
    finally:
        reader.close()


def _as_numeric(chunk: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Text chunk -> float64 chunk; non-numbers become NaN, returned as column -> (mask, text)."""
    wrong_cells: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out = {}
    for column in chunk.columns:
        if column == "row_id":
            out[column] = chunk[column]
            continue
        numbers = pd.to_numeric(chunk[column], errors="coerce").astype("float64")
        wrong = (numbers.isna() & chunk[column].notna()).to_numpy()
        if wrong.any():
            wrong_cells[column] = (wrong, chunk[column].to_numpy(dtype=object))
        out[column] = numbers
    return pd.DataFrame(out, index=chunk.index), wrong_cells


def _integral(values: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (np.floor(values) == values)


def _rule_masks(chunk: pd.DataFrame, kind: FileKind) -> list[tuple[str, str, np.ndarray]]:
    """(column, rule, bad mask) for every rule of the schema that applies to this file kind."""
    rules: list[tuple[str, str, np.ndarray]] = []

    def int_rule(column: str) -> IntRule:
        rule = ROW_RULES[column]
        assert isinstance(rule, IntRule)
        return rule

    def required_int(column: str, rule: IntRule) -> np.ndarray:
        values = chunk[column].to_numpy(dtype=np.float64)
        if rule.choices is not None:
            bad = ~np.isin(values, np.asarray(rule.choices, dtype=np.float64))
            rules.append((column, f"required, {rule.describe()}", bad))
        else:
            bad = ~_integral(values) | (values < rule.low) | (values > rule.high)
            rules.append((column, f"required integer in {rule.low}..{rule.high}", bad))
        return np.where(bad, 0, values).astype(np.int64)

    def number(column: str, rule: NumberRule, source: str | None = None) -> None:
        values = chunk[source or column].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            good = np.isfinite(values)
            if rule.gt is not None:
                good &= values > rule.gt
            if rule.ge is not None:
                good &= values >= rule.ge
            bad = ~good & ~np.isnan(values) if rule.nullable else ~good
        rules.append((source or column, f"must be a {rule.describe()}", bad))

    stock = required_int("stock_id", int_rule("stock_id"))
    date_column = "revealed_date_id" if kind == "revealed_targets" else "date_id"
    date = required_int(date_column, int_rule("date_id"))
    seconds_rule = int_rule("seconds_in_bucket")
    seconds = required_int("seconds_in_bucket", seconds_rule)
    rules.append(
        ("seconds_in_bucket", f"must be a multiple of {seconds_rule.step}", seconds % seconds_rule.step != 0)
    )
    if kind == "revealed_targets":
        target = chunk["revealed_target"].to_numpy(dtype=np.float64)
        rules.append(("revealed_target", "required finite number", ~np.isfinite(target)))
        return rules
    required_int("imbalance_buy_sell_flag", int_rule("imbalance_buy_sell_flag"))
    for column in (*SIZE_COLUMNS, *PRICE_COLUMNS):
        rule = ROW_RULES[column]
        assert isinstance(rule, NumberRule)
        number(column, rule)
    if kind == "train":
        rule = ROW_RULES["target"]
        assert isinstance(rule, NumberRule)
        number("target", rule)
    time_id = chunk["time_id"].to_numpy(dtype=np.float64)
    rules.append(("time_id", "missing field (Kaggle always has a time_id)", np.isnan(time_id)))
    expected_time = date * SNAPSHOTS_PER_DAY + seconds // SECONDS_STEP
    rules.append(
        (
            "time_id",
            "must equal date_id*55 + seconds_in_bucket/10",
            ~np.isnan(time_id) & (time_id != expected_time),
        )
    )
    row_id = chunk["row_id"]
    rules.append(("row_id", "missing field (Kaggle always has a row_id)", row_id.isna().to_numpy()))
    expected_row = expected_row_ids(date, seconds, stock)
    given = pa.array(row_id.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    differs = pc.fill_null(pc.not_equal(given, expected_row), False).to_numpy(zero_copy_only=False)
    rules.append(("row_id", "must equal '{date_id}_{seconds_in_bucket}_{stock_id}'", differs))
    return rules


def expected_row_ids(date_id: np.ndarray, seconds: np.ndarray, stock_id: np.ndarray) -> pa.Array:
    """Kaggle row ids `f"{date_id}_{seconds_in_bucket}_{stock_id}"`, vectorised (a pyarrow string array)."""
    parts = [
        pc.cast(pa.array(np.asarray(v, dtype=np.int64)), pa.string()) for v in (date_id, seconds, stock_id)
    ]
    return pc.binary_join_element_wise(*parts, "_")


def _validate_chunk(
    chunk: pd.DataFrame,
    kind: FileKind,
    file: str,
    lines: np.ndarray,
    report: LoadReport,
    not_numbers: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> np.ndarray:
    """Flag bad rows (reported in `report` with their line from `lines`); returns the mask of good rows."""
    rules = _rule_masks(chunk, kind)
    for column, (mask, text) in (not_numbers or {}).items():
        rules.insert(0, (column, "not a number", mask))
        chunk = chunk.assign(**{column: text})
    bad = np.zeros(len(chunk), dtype=bool)
    for _, _, mask in rules:
        bad |= mask
    if not bad.any():
        return ~bad
    cells: list[BadCell] = []
    counts: Counter[tuple[str, str]] = Counter()
    for column, rule, mask in rules:
        positions = np.flatnonzero(mask)
        if len(positions):
            counts[(column, rule)] += len(positions)
            values = chunk[column].to_numpy()
            cells.extend(
                BadCell(file, int(lines[p]), column, "" if pd.isna(values[p]) else str(values[p]), rule)
                for p in positions[: report.max_reported]
            )
    cells.sort(key=lambda cell: cell.line)
    report.add_bad(cells, counts, int(bad.sum()))
    return ~bad


def _in_range(dates: pd.Series, date_range: tuple[int, int] | None) -> np.ndarray:
    if date_range is None:
        return np.ones(len(dates), dtype=bool)
    values = dates.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return ~((values < date_range[0]) | (values > date_range[1]))


def _check_row_lengths(
    raw: pd.DataFrame, header: Sequence[str], path: str | Path, first_line: int, counter: _FieldCounter
) -> None:
    """A row with fewer fields than the header is malformed, like one with more (the parser pads it with NaN,
    which would load a cut-off row with wrong values): `KaggleFormatError` naming its first missing column."""
    padded = np.flatnonzero(raw[header[-1]].isna().to_numpy())
    for position in padded:
        line = first_line + int(position)
        fields = counter.fields(line)
        if fields and fields < len(header):
            raise KaggleFormatError(
                path,
                line,
                header[fields],
                f"malformed CSV row: {fields} fields where the header has {len(header)} (missing field)",
            )


def _read_file(
    path: str | Path,
    kind: FileKind,
    *,
    date_range: tuple[int, int] | None,
    chunksize: int,
    report: LoadReport,
    float_dtype: FloatDtype = "float64",
) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of one file that pass the rules, and the line of each."""
    header = read_header(path)
    file = str(path)
    pieces: list[pd.DataFrame] = []
    piece_lines: list[np.ndarray] = []
    date_column = "revealed_date_id" if kind == "revealed_targets" else "date_id"

    def consume(as_text: bool) -> None:
        counter = _FieldCounter(path)
        try:
            for first_line, raw in _chunks(path, header, chunksize, as_text):
                _check_row_lengths(raw, header, path, first_line, counter)
                if kind != "revealed_targets":
                    report.rows_read += len(raw)
                chunk, not_numbers = _as_numeric(raw) if as_text else (raw, {})
                if kind != "revealed_targets":
                    dates = chunk[date_column].to_numpy(dtype=np.float64)
                    valid = dates[_integral(dates)]
                    if len(valid):
                        report.see_dates(int(valid.min()), int(valid.max()))
                in_range = _in_range(chunk[date_column], date_range)
                report.rows_outside_date_range += int((~in_range).sum())
                keep = in_range
                if kind == "revealed_targets":
                    blank = (
                        chunk[["stock_id", "revealed_date_id", "revealed_target"]]
                        .isna()
                        .all(axis=1)
                        .to_numpy()
                    )
                    report.revealed_rows_read += len(chunk)
                    report.revealed_rows_blank += int(blank.sum())
                    keep = keep & ~blank
                lines = first_line + np.arange(len(chunk), dtype=np.int64)
                if not keep.all():
                    chunk, lines = chunk[keep], lines[keep]
                    not_numbers = {c: (m[keep], t[keep]) for c, (m, t) in not_numbers.items()}
                if chunk.empty:
                    continue
                good = _validate_chunk(chunk, kind, file, lines, report, not_numbers)
                pieces.append(_cast(chunk[good], kind, float_dtype))
                piece_lines.append(lines[good])
        finally:
            counter.close()

    try:
        try:
            consume(as_text=False)
        except KaggleFormatError:
            raise
        except ValueError:
            # a cell is not a number: read again as text to say exactly where (rare, so the slow path is fine)
            pieces.clear()
            piece_lines.clear()
            report.rows_read = report.revealed_rows_read = report.revealed_rows_blank = 0
            report.rows_outside_date_range = report.bad_rows = 0
            report.date_min = report.date_max = None
            report.bad_cells.clear()
            report.bad_counts.clear()
            consume(as_text=True)
        if not pieces:
            empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in header})
            return _cast(empty, kind, float_dtype), np.zeros(0, dtype=np.int64)
        return pd.concat(pieces, ignore_index=True), np.concatenate(piece_lines)
    except (KaggleFormatError, OSError, MemoryError):
        raise
    except Exception as error:  # anything else is still "this file cannot be read": say which one
        raise KaggleFormatError(
            path, None, None, f"cannot be read as a Kaggle {kind} file ({type(error).__name__}: {error})"
        ) from error


def _cast(chunk: pd.DataFrame, kind: FileKind, float_dtype: FloatDtype = "float64") -> pd.DataFrame:
    if kind == "revealed_targets":
        return pd.DataFrame(
            {
                "date_id": chunk["revealed_date_id"].to_numpy().astype("int16"),
                "seconds_in_bucket": chunk["seconds_in_bucket"].to_numpy().astype("int16"),
                "stock_id": chunk["stock_id"].to_numpy().astype("int16"),
                "target": chunk["revealed_target"].to_numpy(dtype=np.float64),
            }
        )
    out: dict[str, object] = {}
    dtypes = frame_dtypes(float_dtype)
    date = chunk["date_id"].to_numpy().astype(np.int64)
    seconds = chunk["seconds_in_bucket"].to_numpy().astype(np.int64)
    stock = chunk["stock_id"].to_numpy().astype(np.int64)
    for column in KAGGLE_COLUMNS:
        if column == "target" and column not in chunk:
            out[column] = np.full(len(chunk), np.nan)
        elif column == "time_id":
            out[column] = (date * SNAPSHOTS_PER_DAY + seconds // SECONDS_STEP).astype("int32")
        elif column == "row_id":
            out[column] = pd.Series(
                expected_row_ids(date, seconds, stock).to_pandas(), dtype="str"
            ).to_numpy()
        else:
            out[column] = chunk[column].to_numpy().astype(dtypes[column])
    frame = pd.DataFrame(out)
    return frame.astype({"row_id": "str"})


KEYS = ["date_id", "seconds_in_bucket", "stock_id"]


def _key(frame: pd.DataFrame) -> np.ndarray:
    """One int64 per (date_id, seconds_in_bucket, stock_id), ordered as the triple."""
    return (
        frame["date_id"].to_numpy(dtype=np.int64) * 1_000_000_000
        + frame["seconds_in_bucket"].to_numpy(dtype=np.int64) * 100_000
        + frame["stock_id"].to_numpy(dtype=np.int64)
    )


def _drop_duplicates(
    frame: pd.DataFrame,
    files: Sequence[str],
    file_of_row: np.ndarray,
    lines: np.ndarray,
    report: LoadReport,
    what: str,
) -> np.ndarray:
    """Report every row repeating the key of an earlier row (in file, then line order) as a bad row; returns
    the mask of the rows to keep (the first of each key)."""
    key = _key(frame)
    duplicated = pd.Series(key).duplicated(keep="first").to_numpy()
    if not duplicated.any():
        return ~duplicated
    _, first_index, inverse = np.unique(key, return_index=True, return_inverse=True)
    first = first_index[inverse]
    column = "stock_id" if what == "revealed target" else "row_id"
    rule = f"duplicate {what} (same date_id, seconds_in_bucket, stock_id): left out"
    cells = []
    for position in np.flatnonzero(duplicated)[: report.max_reported]:
        original = first[position]
        cells.append(
            BadCell(
                files[file_of_row[position]],
                int(lines[position]),
                column,
                f"{frame['date_id'].iat[position]}_{frame['seconds_in_bucket'].iat[position]}"
                f"_{frame['stock_id'].iat[position]}",
                f"{rule}; first at {files[file_of_row[original]]}:{int(lines[original])}",
            )
        )
    count = int(duplicated.sum())
    report.add_bad(cells, Counter({(column, rule): count}), count)
    return ~duplicated


def _read_one(
    path: str | Path,
    *,
    date_range: tuple[int, int] | None,
    chunksize: int,
    float_dtype: FloatDtype,
    max_reported: int,
) -> tuple[FileKind, KaggleData, np.ndarray]:
    """(kind, data without duplicate keys, line of each row) of one file."""
    kind = sniff_kind(path)
    report = LoadReport(files=[str(path)], max_reported=max_reported)
    frame, lines = _read_file(
        path, kind, date_range=date_range, chunksize=chunksize, report=report, float_dtype=float_dtype
    )
    what = "revealed target" if kind == "revealed_targets" else "row"
    keep = _drop_duplicates(frame, [str(path)], np.zeros(len(frame), dtype=np.int64), lines, report, what)
    if not keep.all():
        frame, lines = frame[keep].reset_index(drop=True), lines[keep]
    report.rows_loaded = len(frame)
    return kind, KaggleData(frame, report), lines


def read_kaggle_csv(
    path: str | Path,
    *,
    date_range: tuple[int, int] | None = None,
    chunksize: int = DEFAULT_CHUNKSIZE,
    float_dtype: FloatDtype = "float64",
    max_reported: int = 1000,
) -> KaggleData:
    """Read one Kaggle file. train/test -> the Kaggle frame; revealed_targets -> columns
    (date_id, seconds_in_bucket, stock_id, target) where date_id is the *revealed* date (the target's own).
    A row repeating the key of an earlier one is left out and reported."""
    _, data, _ = _read_one(
        path, date_range=date_range, chunksize=chunksize, float_dtype=float_dtype, max_reported=max_reported
    )
    return data


def _concat_unique(
    parts: list[tuple[str, pd.DataFrame, np.ndarray]], report: LoadReport, what: str
) -> pd.DataFrame:
    """The frames of several files as one, rows repeating a key of an earlier file reported and left out."""
    if len(parts) == 1:
        return parts[0][1]
    frame = pd.concat([part[1] for part in parts], ignore_index=True)
    files = [part[0] for part in parts]
    file_of_row = np.repeat(np.arange(len(parts)), [len(part[1]) for part in parts])
    lines = np.concatenate([part[2] for part in parts])
    keep = _drop_duplicates(frame, files, file_of_row, lines, report, what)
    return frame if keep.all() else frame[keep].reset_index(drop=True)


def load_kaggle(
    paths: str | Path | Sequence[str | Path],
    *,
    date_range: tuple[int, int] | None = None,
    chunksize: int = DEFAULT_CHUNKSIZE,
    float_dtype: FloatDtype = "float64",
    max_reported: int = 1000,
) -> KaggleData:
    """Load Kaggle files (train.csv, or test.csv [+ revealed_targets.csv], in any order) into one frame.

    Revealed targets fill the `target` of the rows they belong to (rows without one keep NaN); those that
    match no loaded row (e.g. the day before test.csv starts) are counted in `report.revealed_unmatched`.
    A row (or revealed target) repeating the key of one met earlier, in this file or a file given before,
    is left out and reported with its file and line.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ValueError("no file to load")
    report = LoadReport(max_reported=max_reported)
    rows: list[tuple[str, pd.DataFrame, np.ndarray]] = []
    revealed: list[tuple[str, pd.DataFrame, np.ndarray]] = []
    for path in paths:
        kind, data, lines = _read_one(
            path,
            date_range=date_range,
            chunksize=chunksize,
            float_dtype=float_dtype,
            max_reported=max_reported,
        )
        report.merge(data.report)
        (revealed if kind == "revealed_targets" else rows).append((str(path), data.frame, lines))
    if not rows:
        raise KaggleFormatError(
            paths[0], None, None, "only revealed targets given: add train.csv or test.csv"
        )
    frame = _concat_unique(rows, report, "row")
    if len(rows) > 1 or not _is_sorted(frame):
        frame = frame.sort_values(KEYS, kind="stable", ignore_index=True)
    if revealed:
        targets = _concat_unique(revealed, report, "revealed target")
        joined = frame[KEYS].merge(targets, on=KEYS, how="left")["target"].to_numpy()
        found = ~np.isnan(joined)
        report.revealed_joined = int(found.sum())
        report.revealed_unmatched = len(targets) - report.revealed_joined
        current = frame["target"].to_numpy(dtype=np.float64)
        frame["target"] = np.where(np.isnan(current), joined, current)
    report.rows_loaded = len(frame)
    return KaggleData(frame, report)


def _is_sorted(frame: pd.DataFrame) -> bool:
    return bool((np.diff(_key(frame)) >= 0).all())


def validate_frame(frame: pd.DataFrame, *, file: str = "<frame>") -> LoadReport:
    """Check a frame already in the Kaggle schema with the loader's rules (lines = position + 2)."""
    report = LoadReport(files=[file], rows_read=len(frame))
    chunk = frame.copy()
    chunk["row_id"] = chunk["row_id"].astype(object)
    _validate_chunk(chunk, "train", file, np.arange(len(chunk)) + 2, report)
    report.rows_loaded = len(frame) - report.bad_rows
    return report


def load_train(path: str | Path, **options: Any) -> pd.DataFrame:
    """A Kaggle `train.csv` (or a file of its schema) as a validated frame (bad rows left out: see
    `load_kaggle` for the report)."""
    return load_kaggle(path, **options).frame


def load_test(path: str | Path, revealed_targets: str | Path | None = None, **options: Any) -> pd.DataFrame:
    """A Kaggle `test.csv` as a frame (`target` NaN), with the targets of `revealed_targets.csv` joined when
    given (a revealed target belongs to the day of its `revealed_date_id`)."""
    paths: list[str | Path] = [path] if revealed_targets is None else [path, revealed_targets]
    return load_kaggle(paths, **options).frame


def load_revealed_targets(path: str | Path, **options: Any) -> pd.DataFrame:
    """`revealed_targets.csv` as (date_id, seconds_in_bucket, stock_id, target), date_id being the target's
    own day (the file's `revealed_date_id`; its `date_id` is the day the targets were revealed on)."""
    return read_kaggle_csv(path, **options).frame


__all__ = [
    "INT_COLUMNS",
    "KAGGLE_COLUMNS",
    "MAX_DATE_ID",
    "MAX_STOCK_ID",
    "BadCell",
    "FloatDtype",
    "KaggleData",
    "KaggleFormatError",
    "LoadReport",
    "expected_row_ids",
    "frame_dtypes",
    "load_kaggle",
    "load_revealed_targets",
    "load_test",
    "load_train",
    "read_kaggle_csv",
    "validate_frame",
]
