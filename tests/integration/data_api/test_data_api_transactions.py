"""Transactions through the local endpoint: isolation, commit, rollback, and how errors end them."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest
from closecast.db import errors
from closecast.db.data_api import DataApi

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
