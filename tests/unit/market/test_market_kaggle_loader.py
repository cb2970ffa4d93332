"""The Kaggle loader: real example files, dtypes, chunking, bad rows, and files it must refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast.market.schema import KAGGLE_COLUMNS
from closecast_ml.kaggle import KaggleFormatError, frame_dtypes, load_kaggle, read_kaggle_csv

pytestmark = pytest.mark.unit


def _example(kaggle_example: Path):
    return load_kaggle([kaggle_example / "test.csv", kaggle_example / "revealed_targets.csv"])


def test_reads_every_row_of_the_real_test_file(kaggle_example: Path) -> None:
    # Given Kaggle's example test.csv (200 stocks x 55 snapshots x 3 days)
    # When it is loaded with its revealed targets
    data = _example(kaggle_example)
    # Then all 33,000 rows are there and none was refused
    assert len(data.frame) == 33_000
    assert data.report.bad_rows == 0
    assert sorted(data.frame["date_id"].unique().tolist()) == [478, 479, 480]


def test_reads_every_revealed_target_and_joins_them_to_their_rows(kaggle_example: Path) -> None:
    # Given revealed_targets.csv (33,162 lines: targets of days 477..479, plus 162 blank lines)
    data = _example(kaggle_example)
    # Then every line is read, the blank ones are counted as such,
    report = data.report
    assert report.revealed_rows_read == 33_162
    assert report.revealed_rows_blank == 162
    # and the targets of 478 and 479 land on their rows (477 has no row in test.csv)
    assert report.revealed_joined == 22_000
    assert report.revealed_unmatched == 11_000
    known = data.frame.groupby("date_id")["target"].count().to_dict()
    assert known == {478: 11_000, 479: 11_000, 480: 0}


def test_a_joined_target_is_the_revealed_value_of_its_row(kaggle_example: Path) -> None:
    # Given the first line of revealed_targets.csv for revealed_date_id 478 (stock 0, second 0)
    revealed = pd.read_csv(kaggle_example / "revealed_targets.csv")
    line = revealed[
        (revealed.revealed_date_id == 478) & (revealed.stock_id == 0) & (revealed.seconds_in_bucket == 0)
    ]
    # When loaded
    frame = _example(kaggle_example).frame
    row = frame[(frame.date_id == 478) & (frame.stock_id == 0) & (frame.seconds_in_bucket == 0)]
    # Then the row carries that exact target
    assert row["target"].item() == line["revealed_target"].item()


def test_frame_has_kaggle_columns_and_documented_dtypes(example_frame: pd.DataFrame) -> None:
    # Given the loaded example / Then the columns are Kaggle's, in order, with the documented dtypes
    assert tuple(example_frame.columns) == KAGGLE_COLUMNS
    assert {c: str(t) for c, t in example_frame.dtypes.items()} == frame_dtypes()


def test_empty_cells_become_nulls(example_frame: pd.DataFrame) -> None:
    # Given test.csv, whose far/near prices are empty before second 300 (far sometimes after)
    # Then those cells are NaN: 18,000 near and 18,229 far, as in the file
    assert example_frame["near_price"].isna().sum() == 18_000
    assert example_frame["far_price"].isna().sum() == 18_229
    assert example_frame.loc[example_frame.seconds_in_bucket < 300, "near_price"].isna().all()


def test_chunked_reading_gives_the_same_frame(kaggle_example: Path, example_frame: pd.DataFrame) -> None:
    # When the same files are read 1,000 rows at a time
    chunked = load_kaggle(
        [kaggle_example / "test.csv", kaggle_example / "revealed_targets.csv"], chunksize=1000
    )
    # Then the frame is identical
    pd.testing.assert_frame_equal(chunked.frame, example_frame)


def test_date_range_keeps_only_those_dates(kaggle_example: Path) -> None:
    # When only date 479 is asked for
    data = load_kaggle(
        [kaggle_example / "test.csv", kaggle_example / "revealed_targets.csv"], date_range=(479, 479)
    )
    # Then only its 11,000 rows are kept, with their targets
    assert set(data.frame["date_id"]) == {479}
    assert len(data.frame) == 11_000
    assert data.frame["target"].notna().all()


def _write(tmp_path: Path, lines: list[str], name: str = "train.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


HEADER = ",".join(KAGGLE_COLUMNS)
GOOD = "0,5,10,100.0,1,1.0001,2000.0,,,0.9999,10.0,1.0002,20.0,1.0,1.5,276,5_10_0"


def test_bad_values_are_reported_with_line_and_column_and_left_out(tmp_path: Path) -> None:
    # Given a train.csv whose rows 3..6 break one rule each (lines count the header as line 1)
    lines = [
        HEADER,
        GOOD,
        GOOD.replace(",1,1.0001,", ",2,1.0001,").replace("5_10_0", "5_10_1").replace("0,5,10", "1,5,10", 1),
        "2,5,10,-5.0,1,1.0001,2000.0,,,0.9999,10.0,1.0002,20.0,1.0,1.5,276,5_10_2",
        "3,5,15,100.0,1,1.0001,2000.0,,,0.9999,10.0,1.0002,20.0,1.0,1.5,276,5_15_3",
        "4,5,10,100.0,1,1.0001,2000.0,,,0.9999,10.0,1.0002,20.0,1.0,1.5,276,5_10_9",
    ]
    path = _write(tmp_path, lines)
    # When loaded
    data = read_kaggle_csv(path)
    # Then the good row is kept and each bad one is reported where it is
    assert data.frame["stock_id"].tolist() == [0]
    found = {(cell.line, cell.column) for cell in data.report.bad_cells}
    assert {
        (3, "imbalance_buy_sell_flag"),
        (4, "imbalance_size"),
        (5, "seconds_in_bucket"),
        (6, "row_id"),
    } <= found
    assert data.report.bad_rows == 4
    assert all(cell.file == str(path) for cell in data.report.bad_cells)


def test_a_cell_that_is_not_a_number_is_reported_with_its_line(tmp_path: Path) -> None:
    # Given a row whose matched_size is text
    path = _write(tmp_path, [HEADER, GOOD, GOOD.replace("2000.0", "lots")])
    # When loaded
    data = read_kaggle_csv(path)
    # Then that row is left out and reported at line 3, column matched_size
    assert len(data.frame) == 1
    assert [(c.line, c.column, c.rule) for c in data.report.bad_cells] == [
        (3, "matched_size", "not a number")
    ]


def test_malformed_csv_raises_naming_file_line_and_column(tmp_path: Path) -> None:
    # Given a row with one field too many on line 4
    path = _write(tmp_path, [HEADER, GOOD, GOOD, GOOD + ",surprise"])
    # When loaded / Then the error names the file, the line and the column past the header
    with pytest.raises(KaggleFormatError) as raised:
        read_kaggle_csv(path)
    assert raised.value.file == str(path)
    assert raised.value.line == 4
    assert raised.value.column is not None and "18" in raised.value.column
    assert str(path) in str(raised.value) and "line 4" in str(raised.value)


def test_missing_column_raises_naming_it(tmp_path: Path) -> None:
    # Given a train.csv without its wap column
    columns = [c for c in KAGGLE_COLUMNS if c != "wap"]
    path = _write(tmp_path, [",".join(columns)])
    # When loaded / Then the error names the file, line 1 and the missing column
    with pytest.raises(KaggleFormatError) as raised:
        read_kaggle_csv(path)
    assert (raised.value.file, raised.value.line, raised.value.column) == (str(path), 1, "wap")
    assert "missing column" in str(raised.value)


def test_file_of_another_schema_is_refused(tmp_path: Path) -> None:
    # Given a CSV of something else entirely (the index weights)
    path = _write(tmp_path, ["stock_id,weight", "0,0.004"], name="weights.csv")
    # When loaded as Kaggle data / Then it is refused, naming the file, line 1 and its first column
    with pytest.raises(KaggleFormatError) as raised:
        load_kaggle(path)
    assert (raised.value.line, raised.value.column) == (1, "stock_id")
    assert "not a Kaggle file" in str(raised.value)


def test_revealed_targets_alone_are_refused(kaggle_example: Path) -> None:
    # Given only revealed_targets.csv / Then there is no row to attach them to: a clear error
    with pytest.raises(KaggleFormatError, match="only revealed targets"):
        load_kaggle(kaggle_example / "revealed_targets.csv")


def test_float32_option_halves_feature_memory_but_keeps_target_exact(kaggle_example: Path) -> None:
    # When loading with float32 features
    data = load_kaggle(
        [kaggle_example / "test.csv", kaggle_example / "revealed_targets.csv"], float_dtype="float32"
    )
    # Then prices/sizes are float32, the target stays float64
    assert data.frame["wap"].dtype == np.float32
    assert data.frame["target"].dtype == np.float64


def test_files_given_out_of_order_are_merged_in_kaggle_order(kaggle_example: Path, tmp_path: Path) -> None:
    # Given test.csv split in two files, the later dates first
    rows = (kaggle_example / "test.csv").read_text().splitlines()
    header, body = rows[0], rows[1:]
    late = [line for line in body if line.split(",")[1] != "478"]
    early = [line for line in body if line.split(",")[1] == "478"]
    (tmp_path / "late").mkdir()
    (tmp_path / "early").mkdir()
    late_path = _write(tmp_path / "late", [header, *late], name="test.csv")
    early_path = _write(tmp_path / "early", [header, *early], name="test.csv")
    # When both are loaded
    frame = load_kaggle([late_path, early_path]).frame
    # Then the rows come sorted by date, second, stock, as in one file
    keys = frame[["date_id", "seconds_in_bucket", "stock_id"]].astype(int)
    assert keys.equals(keys.sort_values(["date_id", "seconds_in_bucket", "stock_id"]))
    assert len(frame) == 33_000


TEST_HEADER = ",".join(c for c in KAGGLE_COLUMNS if c != "target")
TEST_GOOD = "0,5,10,100.0,1,1.0001,2000.0,,,0.9999,10.0,1.0002,20.0,1.0,276,5_10_0"


def test_a_truncated_real_file_is_refused_at_its_cut_line(kaggle_example: Path, tmp_path: Path) -> None:
    # Given the real test.csv cut after 300,000 bytes (the last line ends inside the ask_size field)
    text = (kaggle_example / "test.csv").read_bytes()[:300_000]
    path = tmp_path / "test.csv"
    path.write_bytes(text)
    last_line = text.count(b"\n") + 1
    # When loaded / Then it is refused at that line, naming the first field it lacks
    with pytest.raises(KaggleFormatError) as raised:
        load_kaggle(path)
    assert (raised.value.line, raised.value.column) == (last_line, "time_id")
    assert "missing field" in str(raised.value)


def test_a_row_with_fewer_fields_than_the_header_is_refused(tmp_path: Path) -> None:
    # Given a train.csv whose line 3 has only its first 10 of 17 fields
    short = ",".join(GOOD.split(",")[:10])
    path = _write(
        tmp_path, [HEADER, GOOD, short, GOOD.replace("0,5,10", "1,5,10", 1).replace("5_10_0", "5_10_1")]
    )
    # When loaded / Then the error names the file, line 3 and the first missing column (bid_size)
    with pytest.raises(KaggleFormatError) as raised:
        read_kaggle_csv(path)
    assert (raised.value.file, raised.value.line, raised.value.column) == (str(path), 3, "bid_size")
    assert "10 fields where the header has 17" in str(raised.value)


@pytest.mark.parametrize("column", ["time_id", "row_id"])
def test_an_empty_time_id_or_row_id_is_a_bad_row(tmp_path: Path, column: str) -> None:
    # Given a test.csv whose second row has an empty time_id (or row_id), which Kaggle always fills
    fields = TEST_GOOD.split(",")
    fields[-2 if column == "time_id" else -1] = ""
    path = _write(tmp_path, [TEST_HEADER, TEST_GOOD, ",".join(fields)], name="test.csv")
    # When loaded
    data = read_kaggle_csv(path)
    # Then that row is left out and reported at line 3 as a missing field
    assert len(data.frame) == 1
    assert [(c.line, c.column) for c in data.report.bad_cells] == [(3, column)]
    assert "missing field" in data.report.bad_cells[0].rule


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    # Given a train.csv saved by Excel on Windows: UTF-8 with a byte order mark
    path = tmp_path / "train.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{GOOD}\n".encode())
    # When loaded / Then its one row loads
    data = read_kaggle_csv(path)
    assert data.frame["row_id"].tolist() == ["5_10_0"] and data.report.ok


def test_a_header_with_spaces_after_the_commas_is_accepted(tmp_path: Path) -> None:
    # Given a header written as "stock_id, date_id, ..."
    path = _write(tmp_path, [", ".join(KAGGLE_COLUMNS), GOOD])
    # When loaded / Then the row loads under the Kaggle names
    data = read_kaggle_csv(path)
    assert data.frame["wap"].tolist() == [1.0] and data.report.ok


def test_an_unexpected_error_while_loading_becomes_a_format_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a reader step that fails in a way the loader does not anticipate
    import closecast_ml.kaggle as kaggle

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("wap")

    monkeypatch.setattr(kaggle, "_cast", broken)
    path = _write(tmp_path, [HEADER, GOOD])
    # When loaded / Then it surfaces as a KaggleFormatError naming the file, not a bare KeyError
    with pytest.raises(KaggleFormatError) as raised:
        read_kaggle_csv(path)
    assert raised.value.file == str(path)
    assert "KeyError" in str(raised.value)


def test_a_duplicate_row_is_reported_with_its_line_and_the_first_is_kept(tmp_path: Path) -> None:
    # Given a train.csv where line 4 repeats the key of line 2 with another wap
    other = GOOD.replace("0,5,10", "1,5,10", 1).replace("5_10_0", "5_10_1")
    duplicate = GOOD.replace(",1.0,1.5,", ",1.1,1.5,")
    path = _write(tmp_path, [HEADER, GOOD, other, duplicate])
    # When loaded
    data = read_kaggle_csv(path)
    # Then line 2 is kept, line 4 is left out and reported as a duplicate of line 2
    assert data.frame["wap"].tolist() == [1.0, 1.0]
    assert data.report.bad_rows == 1
    [cell] = data.report.bad_cells
    assert cell.line == 4 and "duplicate" in cell.rule and f"{path}:2" in cell.rule


def test_duplicate_rows_across_files_are_reported_with_file_and_line(tmp_path: Path) -> None:
    # Given two test.csv files holding the same row
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _write(tmp_path / "a", [TEST_HEADER, TEST_GOOD], name="test.csv")
    second = _write(tmp_path / "b", [TEST_HEADER, TEST_GOOD], name="test.csv")
    # When both are loaded
    data = load_kaggle([first, second])
    # Then the row is loaded once and the second copy is reported where it is
    assert len(data.frame) == 1
    [cell] = data.report.bad_cells
    assert (cell.file, cell.line) == (str(second), 2) and "duplicate" in cell.rule


def test_an_unterminated_quote_names_the_line_where_it_starts(tmp_path: Path) -> None:
    # Given a train.csv whose line 3 opens a quote in its wap field that never closes
    path = _write(tmp_path, [HEADER, GOOD, GOOD.replace(",1.0,1.5,", ',"1.0,1.5,'), GOOD])
    # When loaded / Then the error names line 3 and the wap column
    with pytest.raises(KaggleFormatError) as raised:
        read_kaggle_csv(path)
    assert (raised.value.line, raised.value.column) == (3, "wap")
    assert "EOF inside string" in str(raised.value)
