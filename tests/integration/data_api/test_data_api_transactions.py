"""Transactions through the local endpoint: isolation, commit, rollback, and how errors end them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import botocore.exceptions
import pytest

from closecast.db import errors
from closecast.db.data_api import DataApi
from closecast_tools.local.data_api import LocalDataApi

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tx_table(session_api: DataApi) -> str:
    session_api.execute("CREATE TABLE tx_rows (id int PRIMARY KEY, note text)")
    return "tx_rows"


def _ids(api: DataApi, transaction_id: str | None = None) -> list[int]:
    rows = api.execute("SELECT id FROM tx_rows ORDER BY id", transaction_id=transaction_id).records
    return [r["id"] for r in rows]


def test_rows_are_invisible_to_others_until_commit(api: DataApi, tx_table: str) -> None:
    # Given a transaction that inserted a row
    tid = api.begin()
    api.execute("INSERT INTO tx_rows VALUES (1, 'committed')", transaction_id=tid)
    # Then it sees the row and a statement outside the transaction does not
    assert 1 in _ids(api, tid)
    assert 1 not in _ids(api)
    # When committed / Then everyone sees it
    assert api.commit(tid) == "Transaction Committed"
    assert 1 in _ids(api)


def test_rollback_discards_rows(api: DataApi, tx_table: str) -> None:
    # Given a transaction that inserted rows / When rolled back / Then they are gone
    tid = api.begin()
    api.batch_execute(
        "INSERT INTO tx_rows VALUES (:id, 'rolled back')", [{"id": 2}, {"id": 3}], transaction_id=tid
    )
    assert {2, 3} <= set(_ids(api, tid))
    assert api.rollback(tid) == "Rollback Complete"
    assert not {2, 3} & set(_ids(api))


def test_context_manager_rolls_back_on_exception(api: DataApi, tx_table: str) -> None:
    # Given a transaction block that inserts then raises
    with pytest.raises(RuntimeError), api.transaction() as tid:
        api.execute("INSERT INTO tx_rows VALUES (4, 'x')", transaction_id=tid)
        raise RuntimeError("boom")
    # Then the insert is gone; and a clean block commits
    assert 4 not in _ids(api)
    with api.transaction() as tid:
        api.execute("INSERT INTO tx_rows VALUES (5, 'y')", transaction_id=tid)
    assert 5 in _ids(api)


def test_statement_error_ends_the_transaction(api: DataApi, tx_table: str) -> None:
    # Given a transaction with one good insert, then a failing statement
    tid = api.begin()
    api.execute("INSERT INTO tx_rows VALUES (6, 'lost')", transaction_id=tid)
    with pytest.raises(errors.DatabaseError):
        api.execute("INSERT INTO tx_rows VALUES (6, 'duplicate')", transaction_id=tid)
    # Then the transaction is gone (its work rolled back) and further calls say so
    with pytest.raises(errors.TransactionNotFound):
        api.execute("SELECT 1", transaction_id=tid)
    assert 6 not in _ids(api)


def test_context_manager_reraises_the_statement_error(api: DataApi, tx_table: str) -> None:
    # Given a block whose statement fails (which ends the transaction server-side)
    # When the block exits / Then the original UniqueViolation propagates, not TransactionNotFound
    api.execute("INSERT INTO tx_rows VALUES (7, 'first')")
    with pytest.raises(errors.UniqueViolation), api.transaction() as tid:
        api.execute("INSERT INTO tx_rows VALUES (7, 'again')", transaction_id=tid)


def test_unknown_transaction_is_not_found(client: Any, target: Any) -> None:
    # Given a made-up transaction id / When committed / Then TransactionNotFoundException (404)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.commit_transaction(
            resourceArn=target.cluster_arn, secretArn=target.secret_arn, transactionId="no-such-transaction"
        )
    assert caught.value.response["Error"]["Code"] == "TransactionNotFoundException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_committed_transaction_cannot_be_used_again(api: DataApi, tx_table: str) -> None:
    # Given a committed transaction / When used again / Then TransactionNotFound
    tid = api.begin()
    api.commit(tid)
    with pytest.raises(errors.TransactionNotFound):
        api.commit(tid)


@pytest.fixture
def short_lived_endpoint(dsn: str, target: Any) -> Iterator[LocalDataApi]:
    with LocalDataApi(
        dsn,
        cluster_arn=target.cluster_arn,
        secret_arn=target.secret_arn,
        database=target.database,
        transaction_idle_timeout_s=0.3,
    ) as local:
        yield local


def test_idle_transaction_is_rolled_back_after_the_timeout(
    short_lived_endpoint: LocalDataApi, target: Any, make_client: Callable[[str], Any], tx_table: str
) -> None:
    # Given an endpoint whose idle-transaction timeout is 0.3 s (3 minutes on the Data API)
    api = DataApi(
        make_client(short_lived_endpoint.url), target.cluster_arn, target.secret_arn, target.database
    )
    tid = api.begin()
    api.execute("INSERT INTO tx_rows VALUES (8, 'abandoned')", transaction_id=tid)
    # When the transaction is left idle past the timeout
    time.sleep(1.5)
    # Then it was rolled back and is gone
    with pytest.raises(errors.TransactionNotFound):
        api.commit(tid)
    assert 8 not in _ids(api)


def test_concurrent_call_in_one_transaction_is_refused(api: DataApi, tx_table: str) -> None:
    # Given a transaction busy with a slow statement
    tid = api.begin()
    worker = threading.Thread(
        target=api.execute, args=("SELECT pg_sleep(1)",), kwargs={"transaction_id": tid}
    )
    worker.start()
    time.sleep(0.3)
    # When a second statement arrives on the same transaction / Then it is refused
    with pytest.raises(errors.DatabaseError) as caught:
        api.execute("SELECT 1", transaction_id=tid, idempotent=False)
    assert "still running a query" in caught.value.message
    worker.join()
    api.rollback(tid)


def test_client_rides_out_a_resuming_cluster(endpoint: LocalDataApi, client: Any, target: Any) -> None:
    # Given an endpoint that answers the next three calls with DatabaseResumingException
    sleeps: list[float] = []
    api = DataApi(client, target.cluster_arn, target.secret_arn, target.database, sleep=sleeps.append)
    endpoint.fail_next(3)
    # When a statement runs / Then it succeeds after three backoffs
    assert api.execute("SELECT 42 AS answer").records == [{"answer": 42}]
    assert len(sleeps) == 3
