"""Data in S3: an ``s3://`` data source staged onto the file system, and results published back.

boto3 finds credentials and the endpoint the standard way (environment,
profile, instance role; ``AWS_ENDPOINT_URL`` for an S3-compatible store).
Every failure is one message naming the URI: a bucket that does not exist
or cannot be read, a folder with no files.

Staging downloads into a temporary folder beside the destination and renames
it into place only when every file has arrived, so an interrupted download
never passes for a complete one. Publishing uploads each file with its
SHA-256 in the object's metadata and returns what was written.
"""

from __future__ import annotations

import fnmatch
import hashlib
import shutil
from pathlib import Path
from urllib.parse import urlparse


class S3DataError(RuntimeError):
    """An S3 location cannot be used; the message names it and why."""


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` as ("bucket", "some/prefix") (prefix without its slashes)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise S3DataError(f"{uri!r} is not an S3 URI (s3://bucket/prefix)")
    return parsed.netloc, parsed.path.strip("/")


def client():
    """An S3 client from the standard AWS configuration."""
    import boto3

    return boto3.client("s3")


def _explain(err: Exception, what: str) -> S3DataError:
    """One message for a botocore error met while reaching ``what``."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(err, NoCredentialsError):
        return S3DataError(f"no AWS credentials to read {what} (environment, profile or instance role)")
    if isinstance(err, ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchBucket"}:
            return S3DataError(f"{what}: the bucket does not exist")
        if code in {"403", "AccessDenied", "AllAccessDisabled"}:
            return S3DataError(
                f"{what}: access denied to these credentials (needs s3:ListBucket, s3:GetObject)"
            )
        return S3DataError(f"{what}: {code or err}")
    return S3DataError(f"{what}: {err}")


def check_bucket(s3, bucket: str, purpose: str) -> None:
    """Raise `S3DataError` unless ``bucket`` exists and these credentials may list it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except (ClientError, BotoCoreError) as err:
        raise _explain(err, f"S3 bucket {bucket} ({purpose})") from None


def list_objects(s3, uri: str) -> list[dict]:
    """Every object under the folder ``uri`` (recursively): Key, Size, ETag."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    folder = f"{prefix}/" if prefix else ""
    objects = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder):
            objects += [o for o in page.get("Contents", []) if not o["Key"].endswith("/")]
    except (ClientError, BotoCoreError) as err:
        raise _explain(err, uri) from None
    return objects


def stage(
    s3, uri: str, dest: Path, log=print, patterns: list[str] | None = None, key: str = "data.path"
) -> dict:
    """Download everything under ``uri`` into ``dest`` (relative paths kept); a record of what came.

    With ``patterns`` (shell-style, e.g. ``*_ooi_*.fits*``), only the files
    whose names match one of them. ``dest`` appears only complete. Raises
    `S3DataError` if ``uri`` holds no such files (naming config ``key``).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    objects = list_objects(s3, uri)
    if patterns:
        named = [(o, o["Key"].rsplit("/", 1)[-1]) for o in objects]
        objects = [o for o, name in named if any(fnmatch.fnmatch(name, p) for p in patterns)]
    if not objects:
        matching = f" matching {', '.join(patterns)}" if patterns else ""
        raise S3DataError(f"{uri.rstrip('/')}/ holds no files{matching} (config key {key})")
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    files = []
    for obj in objects:
        relative = obj["Key"][len(prefix) :].lstrip("/")
        target = partial / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            s3.download_file(bucket, obj["Key"], str(target))
        except (ClientError, BotoCoreError) as err:
            raise _explain(err, f"s3://{bucket}/{obj['Key']}") from None
        files.append({"name": relative, "bytes": obj["Size"], "etag": obj["ETag"].strip('"')})
        log(f"s3://{bucket}/{obj['Key']} -> {dest / relative} ({obj['Size']} bytes)")
    shutil.rmtree(dest, ignore_errors=True)
    partial.rename(dest)
    return {"source": uri, "files": files}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def publish(s3, files: dict[str, Path], uri: str, log=print) -> list[dict]:
    """Upload ``files`` (name under ``uri`` -> local path), each with its SHA-256; what was written."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri)
    written = []
    for name, path in sorted(files.items()):
        key = f"{prefix}/{name}" if prefix else name
        digest = sha256(path)
        try:
            s3.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
        except S3UploadFailedError as err:  # raised while handling the ClientError it reports
            raise _explain(err.__context__ or err, f"s3://{bucket}/{key}") from None
        except (ClientError, BotoCoreError) as err:
            raise _explain(err, f"s3://{bucket}/{key}") from None
        written.append({"uri": f"s3://{bucket}/{key}", "bytes": path.stat().st_size, "sha256": digest})
        log(f"{path} -> s3://{bucket}/{key}")
    return written
