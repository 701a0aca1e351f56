"""S3-compatible object storage for files that must outlive one machine's disk.

A registry whose database is shared (PostgreSQL) is only as shared as its files: on
another machine, ``registry/<problem>/v<N>/`` does not exist. With a model store
(``LSTMOPS_MODEL_STORE=s3://bucket/prefix``, or ``--model-store``), registering a version
also uploads its bundle, and a machine that lacks a version's folder downloads it into
its local registry folder, which then acts as a cache. The update flow ships each run's
prepared arrays through the same store to Dask workers that share no disk with it.

Bundles are stored by content: ``<prefix>/models/<problem>/<digest>/<file>``, where
``digest`` is the sha256 of the checksums the database records for the version. The
upload therefore happens before the database knows the version number (no lock is held
over the network), an interrupted registration leaves at most unreferenced objects that
a retry writes again byte for byte, and nothing stored is ever overwritten with other
content. Run data lives under ``<prefix>/runs/<problem>/<run id>/``.

Endpoint and credentials are boto3's own: ``AWS_ENDPOINT_URL`` (e.g. a MinIO or moto
server), ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, or any
other source boto3 reads. Every failure a user can fix (no such bucket, no credentials,
an unreachable endpoint, a missing object) is a one-line :class:`RegistryError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmops.errors import RegistryError

ENV = "LSTMOPS_MODEL_STORE"


class MissingObject(RegistryError):
    """An object the store should hold is not there."""


_clients: dict[tuple[int, int], Any] = {}  # (process, thread) -> boto3 client: clients are not picklable
_lock = threading.Lock()


def bundle_digest(checksums: dict[str, str]) -> str:
    """The content address of a bundle: sha256 of its recorded checksums in canonical JSON."""
    return hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()


def _client() -> Any:
    """A boto3 S3 client for this process and thread, with few retries and short connect timeouts.

    botocore's defaults retry an unreachable endpoint for about a minute; a registry
    command should say "cannot reach" within seconds.
    """
    key = (os.getpid(), threading.get_ident())
    with _lock:
        if key not in _clients:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=5, read_timeout=120, retries={"max_attempts": 3, "mode": "standard"})
            _clients[key] = boto3.session.Session().client("s3", config=config)
        return _clients[key]


@dataclass(frozen=True)
class ObjectStore:
    """A bucket and a key prefix on S3-compatible storage; small and picklable (clients are made per process)."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> "ObjectStore":
        """``s3://bucket[/prefix]``, or a one-line :class:`RegistryError`."""
        text = str(url).strip()
        if not text.startswith("s3://") or not text[5:].split("/", 1)[0]:
            raise RegistryError(f"model store {url!r} is not an s3://bucket/prefix URL")
        bucket, _, prefix = text[5:].partition("/")
        return cls(bucket, prefix.strip("/"))

    @classmethod
    def from_env(cls) -> "ObjectStore | None":
        """The store ``$LSTMOPS_MODEL_STORE`` names, or None when it is unset or empty."""
        url = os.environ.get(ENV, "").strip()
        return cls.parse(url) if url else None

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under the prefix."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def _fail(self, err: Exception, key: str) -> RegistryError:
        """One line for what went wrong talking to the store (the caller raises it)."""
        from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
        from botocore.exceptions import ConnectionError as Unreachable

        where = f"s3://{self.bucket}/{key}"
        if isinstance(err, ClientError):
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                return RegistryError(f"model store {self.url}: bucket {self.bucket!r} does not exist")
            if code in ("NoSuchKey", "404", "NotFound"):
                return MissingObject(f"model store: {where} is missing")
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                return RegistryError(f"model store {self.url}: access denied ({code}) for {where}")
            return RegistryError(f"model store {self.url}: {code or 'error'} for {where}")
        if isinstance(err, NoCredentialsError):
            return RegistryError(f"model store {self.url}: no credentials (set AWS_ACCESS_KEY_ID and "
                                 "AWS_SECRET_ACCESS_KEY, or another source boto3 reads)")
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        if isinstance(err, (Unreachable, HTTPClientError)):  # refused, timed out, dropped
            return RegistryError(f"model store {self.url}: cannot reach it ({reason})")
        return RegistryError(f"model store {self.url}: {reason}")

    def _call(self, key: str, action: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(_client(), action)(Bucket=self.bucket, **kwargs)
        except (BotoCoreError, ClientError) as err:
            raise self._fail(err, key) from None

    def put_file(self, source: Path, *parts: str) -> None:
        """Upload one local file to ``parts`` under the prefix."""
        key = self.key(*parts)
        with open(source, "rb") as fh:
            self._call(key, "put_object", Key=key, Body=fh)

    def put_bytes(self, data: bytes, *parts: str) -> None:
        """Upload ``data`` to ``parts`` under the prefix."""
        key = self.key(*parts)
        self._call(key, "put_object", Key=key, Body=data)

    def get_file(self, target: Path, *parts: str) -> None:
        """Download ``parts`` under the prefix into ``target`` (missing → one-line error naming the object)."""
        from botocore.exceptions import BotoCoreError

        key = self.key(*parts)
        body = self._call(key, "get_object", Key=key)["Body"]
        try:
            with open(target, "wb") as fh:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    fh.write(chunk)
        except BotoCoreError as err:  # the connection dropped mid-download
            raise self._fail(err, key) from None

    def get_bytes(self, *parts: str) -> bytes | None:
        """The object at ``parts``, or None when there is none (any other failure raises)."""
        key = self.key(*parts)
        try:
            return self._call(key, "get_object", Key=key)["Body"].read()
        except MissingObject:
            return None

    # --- model bundles ------------------------------------------------------------------

    def bundle_parts(self, problem: str, checksums: dict[str, str]) -> tuple[str, str, str]:
        """Where a bundle with these recorded checksums lives (parts for :meth:`key`)."""
        return "models", problem, bundle_digest(checksums)

    def put_bundle(self, problem: str, folder: Path, checksums: dict[str, str], names: tuple[str, ...]) -> str:
        """Upload the files ``names`` of a verified bundle; returns its ``s3://`` location."""
        parts = self.bundle_parts(problem, checksums)
        for name in names:
            self.put_file(Path(folder) / name, *parts, name)
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def get_bundle(self, problem: str, checksums: dict[str, str], names: tuple[str, ...], target: Path) -> str:
        """Download a bundle's files ``names`` into ``target`` (unverified: the caller checks); returns its location."""
        parts = self.bundle_parts(problem, checksums)
        for name in names:
            self.get_file(Path(target) / name, *parts, name)
        return f"s3://{self.bucket}/{self.key(*parts)}"
