"""moto in server mode, with S3 objects written through to disk, so that a crash (`kill -9`) loses none.

moto keeps every object in memory. Here each request that changes an object (PUT, copy, multipart complete,
DELETE, multi-object delete) is answered only after the object's new state is on disk; creating a bucket loads
what the disk holds for it. Run as ``python -m closecast_tools.local.moto_server -H HOST -p PORT --s3-dir DIR``.

On disk: ``DIR/<bucket>/<sha256 of key>.body`` (the bytes) and ``.json`` (key, metadata), each replaced
atomically; the ``.json`` is written last and removed first, so a half-written object is never loaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

log = logging.getLogger("closecast.local.moto")

_DIGEST_NAME = len(hashlib.sha256().hexdigest())


class S3Disk:
    """The on-disk copy of the buckets: one directory per bucket, two files per object."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()

    def _paths(self, bucket: str, key: str) -> tuple[Path, Path]:
        stem = hashlib.sha256(key.encode("utf-8")).hexdigest()
        folder = self.root / bucket
        return folder / f"{stem}.body", folder / f"{stem}.json"

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def write(self, bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> None:
        body_path, meta_path = self._paths(bucket, key)
        with self.lock:
            body_path.parent.mkdir(parents=True, exist_ok=True)
            self._replace(body_path, body)
            self._replace(meta_path, json.dumps({"key": key, "metadata": metadata}).encode())

    def remove(self, bucket: str, key: str) -> None:
        body_path, meta_path = self._paths(bucket, key)
        with self.lock:
            meta_path.unlink(missing_ok=True)
            body_path.unlink(missing_ok=True)

    def objects(self, bucket: str) -> Iterable[tuple[str, bytes, dict[str, str]]]:
        """Every complete object stored for `bucket` (key, bytes, metadata)."""
        folder = self.root / bucket
        if not folder.is_dir():
            return
        for meta_path in sorted(folder.glob("*.json")):
            body_path = meta_path.with_suffix(".body")
            try:
                meta = json.loads(meta_path.read_bytes())
                yield str(meta["key"]), body_path.read_bytes(), dict(meta.get("metadata") or {})
            except (OSError, ValueError, KeyError) as exc:
                log.warning("skipping unreadable stored object %s: %s", meta_path, exc)

    def legacy_files(self, bucket: str) -> list[tuple[str, Path]]:
        """Objects saved by earlier versions as plain files at their key's path."""
        folder = self.root / bucket
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            if not path.is_file() or path.name.startswith("."):
                continue
            relative = path.relative_to(folder)
            stem, _, suffix = path.name.rpartition(".")
            if len(relative.parts) == 1 and len(stem) == _DIGEST_NAME and suffix in ("body", "json"):
                continue
            found.append((relative.as_posix(), path))
        return found


class _Pending(threading.local):
    """Objects changed by the request this thread is serving; `loading` while a bucket is being restored."""

    def __init__(self) -> None:
        self.changed: list[tuple[Any, str, str]] = []
        self.loading = False


def install(disk: S3Disk) -> _Pending:
    """Hook moto's S3 backend: note every object a request changes; load a bucket's objects when it is
    created."""
    from moto.s3.models import S3Backend

    pending = _Pending()
    put_object = S3Backend.put_object
    delete_object = S3Backend.delete_object
    create_bucket = S3Backend.create_bucket

    def put_object_noted(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        key = put_object(self, bucket_name, key_name, *args, **kwargs)
        if not pending.loading:
            pending.changed.append((self, bucket_name, key_name))
        return key

    def delete_object_noted(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        result = delete_object(self, bucket_name, key_name, *args, **kwargs)
        pending.changed.append((self, bucket_name, key_name))
        return result

    def create_bucket_loaded(self: Any, bucket_name: str, *args: Any, **kwargs: Any) -> Any:
        bucket = create_bucket(self, bucket_name, *args, **kwargs)
        pending.loading = True
        try:
            for key_name, body, metadata in disk.objects(bucket_name):
                put_object(self, bucket_name, key_name, body, disable_notification=True).set_metadata(
                    metadata
                )
            for key_name, path in disk.legacy_files(bucket_name):
                body = path.read_bytes()
                put_object(self, bucket_name, key_name, body, disable_notification=True)
                disk.write(bucket_name, key_name, body, {})
                path.unlink()
        finally:
            pending.loading = False
        return bucket

    S3Backend.put_object = put_object_noted  # type: ignore[method-assign]
    S3Backend.delete_object = delete_object_noted  # type: ignore[method-assign]
    S3Backend.create_bucket = create_bucket_loaded  # type: ignore[method-assign]
    return pending


def flush(disk: S3Disk, pending: _Pending) -> None:
    """Write the current state of every object the request changed (its latest version, or its absence)."""
    from moto.s3.exceptions import MissingBucket
    from moto.s3.models import FakeKey

    changed, pending.changed = pending.changed, []
    for backend, bucket_name, key_name in dict.fromkeys(changed):
        try:
            bucket = backend.get_bucket(bucket_name)
        except MissingBucket:  # the bucket is gone: nothing of it to keep
            continue
        key = bucket.keys.get(key_name)
        if isinstance(key, FakeKey):
            disk.write(bucket_name, key_name, key.value, dict(key.metadata))
        else:
            disk.remove(bucket_name, key_name)


def write_through(app: Callable[..., Any], disk: S3Disk, pending: _Pending) -> Callable[..., Any]:
    """WSGI middleware: the response leaves only after the objects it changed are on disk."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        pending.changed = []
        try:
            return app(environ, start_response)
        finally:
            flush(disk, pending)

    return wrapped


def scan_only_xml_for_request_ids() -> None:
    """moto writes the request ID into every response body with a look-behind regex over the whole body, which
    matches only XML (`<RequestId>...</RequestId>`): on a JSON body of several MiB (a Kinesis GetRecords) the
    scan costs ~50 ms a call and finds nothing. Here a body without `<RequestId>` skips it; the headers, and any
    body that has one, are handled by moto's own code, so every answer is what it was."""
    from moto.core.responses import BaseResponse

    original = BaseResponse._enrich_response

    def enrich(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
        if isinstance(body, str) and "<RequestId>" not in body:
            headers, _ = original(headers, "")
            return headers, body
        return original(headers, body)

    BaseResponse._enrich_response = staticmethod(enrich)  # type: ignore[method-assign]


def constant_time_sequence_numbers() -> None:
    """moto's Kinesis shard finds its first and last sequence numbers by copying every key of its ordered dict
    into a list, and does so for every record put: O(records in the shard) a record, so that a long replay
    into the local cloud slows down quadratically (495 records into a shard of 50,000: ~300 ms instead of
    ~2). The first and last keys of the ordered dict are the same numbers, in constant time."""
    from moto.kinesis.models import Shard

    def first(self: Any) -> int:
        return next(iter(self.records), 0)

    def last(self: Any) -> int:
        return next(reversed(self.records), 0)

    Shard.get_min_sequence_number = first  # type: ignore[method-assign]
    Shard.get_max_sequence_number = last  # type: ignore[method-assign]


def get_records_from_where_they_start() -> None:
    """moto's GetRecords walks a shard from its first record to find those after the iterator's position, on
    every call: O(records in the shard) a call, however few it returns. A shard's records are keyed by
    sequence numbers that moto hands out one after the other (1, 2, 3, ...), so while they run without a gap
    the records after a position are found by their numbers: O(records returned). A shard whose numbers do not
    run so (none does today) is walked by moto's own code; either way the answer is moto's."""
    from moto.kinesis.models import Shard

    walk = Shard.get_records

    def get_records(self: Any, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
        records = self.records
        if not records or (limit is not None and (not isinstance(limit, int) or limit < 1)):
            return walk(self, last_sequence_id, limit)
        first, newest = next(iter(records)), next(reversed(records))
        if newest - first + 1 != len(records):  # a gap: walk
            return walk(self, last_sequence_id, limit)
        last = int(last_sequence_id)
        start = max(last + 1, first)
        stop = newest if limit is None else min(newest, start + limit - 1)
        results = [records[n] for n in range(start, stop + 1)]
        if not results:
            return [], last, 0
        behind = records[newest].created_at - results[-1].created_at
        return results, results[-1].sequence_number, int(behind * 1000)

    Shard.get_records = get_records  # type: ignore[method-assign]


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def canonical_base64(text: str) -> bool:
    """True when `text` is base64 as an encoder writes it: the alphabet, padded to a multiple of four, and no
    stray bits in the last character before the padding (a decoder drops them, so encoding the bytes again
    would give another text). Then decoding and encoding again gives `text` back."""
    if not text.isascii() or len(text) % 4:
        return False
    raw = text.encode("ascii")
    body = raw.rstrip(b"=")
    padding = len(raw) - len(body)
    if padding > 2 or body.translate(None, _BASE64_ALPHABET):
        return False
    if padding == 2:
        return body[-1:] in (b"A", b"Q", b"g", b"w")
    if padding == 1:
        return body[-1] in b"AEIMQUYcgkosw048"
    return True


class _Base64Text(str):
    """A record's data as the base64 text it was put with, which GetRecords sends back as it is."""


def base64_data_as_put() -> None:
    """moto keeps a Kinesis record's data as the base64 text of the PutRecords request; GetRecords decodes it
    and its response serializer encodes the bytes again, ~10 ms for each 6 MB a consumer reads. When that text
    is what encoding its bytes gives back (canonical base64: every SDK's), it goes out as it came in, the same
    characters; any other text takes moto's own way."""
    from moto.core.serialize import ResponseSerializer
    from moto.kinesis.models import Record

    to_json = Record.to_json
    encode = ResponseSerializer._base64

    def record_json(self: Any) -> dict[str, Any]:
        data = self.data
        if isinstance(data, str) and canonical_base64(data):
            return {
                "Data": _Base64Text(data),
                "PartitionKey": self.partition_key,
                "SequenceNumber": str(self.sequence_number),
                "ApproximateArrivalTimestamp": self.created_at_datetime,
            }
        return to_json(self)

    def base64(self: Any, value: str | bytes) -> str:
        if isinstance(value, _Base64Text):
            return str.__str__(value)
        return encode(self, value)

    Record.to_json = record_json  # type: ignore[method-assign]
    ResponseSerializer._base64 = base64  # type: ignore[method-assign]


def get_records_body_by_pydantic_core() -> None:
    """moto writes a GetRecords body with `json.dumps`, which escapes a string character by character: ~13 ms
    for the 6 MB of base64 a consumer reads a batch. pydantic-core's encoder writes the same JSON value (no
    spaces after separators, non-ASCII as UTF-8 rather than escaped) ~5x faster; every other body, and any this
    encoder refuses, is written by moto."""
    from moto.core.serialize import BaseJSONSerializer
    from pydantic_core import to_json

    serialize_body = BaseJSONSerializer._serialize_body

    def body(self: Any, value: Any) -> str:
        model = self.operation_model
        if (
            not self.pretty_print
            and model.name == "GetRecords"
            and model.service_model.service_name == "kinesis"
        ):
            try:
                return to_json(value, inf_nan_mode="constants").decode()
            except ValueError:
                pass
        return str(serialize_body(self, value))

    BaseJSONSerializer._serialize_body = body  # type: ignore[method-assign,assignment]


def remember_backends_by_host() -> None:
    """moto's dispatcher finds the backend of every request anew, under a lock: it lists its own package
    directory (a `stat` per service, ~200) and tries each service's URL patterns. The answer depends on the
    host name alone, so each host's backend is looked up once and remembered; a host it cannot place is looked
    up (and reported) every time, as before."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    find = DomainDispatcherApplication.get_backend_for_host
    found: dict[str, Any] = {}

    def backend_for_host(self: Any, host: str | None) -> Any:
        if host is None:
            return None
        if host in found:
            return found[host]
        backend = find(self, host)
        if backend:
            found[host] = backend
        return backend

    DomainDispatcherApplication.get_backend_for_host = backend_for_host  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import run_simple

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--s3-dir", type=Path, required=True, help="where bucket objects are kept")
    args = parser.parse_args(argv)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))

    disk = S3Disk(args.s3_dir)
    args.s3_dir.mkdir(parents=True, exist_ok=True)
    pending = install(disk)
    scan_only_xml_for_request_ids()
    constant_time_sequence_numbers()
    get_records_from_where_they_start()
    base64_data_as_put()
    get_records_body_by_pydantic_core()
    remember_backends_by_host()
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        write_through(app, disk, pending),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
