"""Reading a day's predictions file back as rows (GET /model-inferences/{id}/predictions): the CSV the inference
function writes, parsed with the standard library, filtered and ordered; a missing or malformed file is a
404 naming the problem, never a 500."""

from __future__ import annotations

import io
import re

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from closecast.resources.model_inferences import predictions

pytestmark = pytest.mark.unit

CSV = (
    "row_id,stock_id,seconds_in_bucket,prediction,target\n"
    "4_10_1,1,10,-0.5,1.25\n"
    "4_0_1,1,0,0.25,\n"
    "4_0_0,0,0,1.5,-2.0\n"
)


def test_rows_are_typed_and_an_unknown_target_is_null() -> None:
    """Given a predictions CSV with a target missing on one row, then each row is typed and that target is None."""
    rows = predictions.parse(CSV)
    assert rows[0] == {
        "row_id": "4_10_1",
        "stock_id": 1,
        "seconds_in_bucket": 10,
        "prediction": -0.5,
        "target": 1.25,
    }
    assert rows[1]["target"] is None


def test_a_file_without_targets_gives_null_targets() -> None:
    """Given a file written before the day's targets were known (no target column), then every target is None."""
    rows = predictions.parse("row_id,stock_id,seconds_in_bucket,prediction\n4_0_0,0,0,0.1\n")
    assert rows == [
        {"row_id": "4_0_0", "stock_id": 0, "seconds_in_bucket": 0, "prediction": 0.1, "target": None}
    ]


def test_filters_keep_the_stock_and_second_asked_for_in_time_then_stock_order() -> None:
    """Given rows of two stocks, when one stock (or one second) is asked for, then only its rows come back,
    ordered by second then stock."""
    rows = predictions.parse(CSV)
    assert [r["row_id"] for r in predictions.select(rows, stock_id=1, seconds_in_bucket=None)] == [
        "4_0_1",
        "4_10_1",
    ]
    assert [r["row_id"] for r in predictions.select(rows, stock_id=None, seconds_in_bucket=0)] == [
        "4_0_0",
        "4_0_1",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("row_id,stock_id,prediction\n1,1,1\n", "lacks the column(s) seconds_in_bucket"),
        ("row_id,stock_id,seconds_in_bucket,prediction\nx,one,0,1\n", "malformed row"),
    ],
)
def test_a_malformed_file_is_not_found_with_its_reason(text: str, message: str) -> None:
    """Given a file lacking a column or holding a non-number, then PredictionsFileError (a 404) says which."""
    with pytest.raises(predictions.PredictionsFileError, match=re.escape(message)):
        predictions.parse(text)


def _s3() -> tuple[object, Stubber]:
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_the_file_is_read_from_its_s3_location() -> None:
    """Given an inference's s3:// location, when it is read, then the object at that bucket and key is parsed."""
    client, stub = _s3()
    body = StreamingBody(io.BytesIO(CSV.encode()), len(CSV))
    stub.add_response("get_object", {"Body": body}, {"Bucket": "bkt", "Key": "predictions/m/1/0004.csv"})
    with stub:
        rows = predictions.read(client, "s3://bkt/predictions/m/1/0004.csv")
    assert len(rows) == 3


def test_a_deleted_file_is_not_found() -> None:
    """Given a location whose object is gone, then PredictionsFileError says the file no longer exists."""
    client, stub = _s3()
    stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    with stub, pytest.raises(predictions.PredictionsFileError, match="no longer exists"):
        predictions.read(client, "s3://bkt/predictions/gone.csv")


def test_a_location_that_is_not_an_s3_object_is_refused() -> None:
    """Given a stored location that is not s3://bucket/key, then it is refused before any S3 call."""
    with pytest.raises(predictions.PredictionsFileError, match="not an s3:// object"):
        predictions.split_s3_uri("https://example.com/file.csv")
