"""Objects in S3: uploaded contact files. boto3 is imported on first use only."""

from functools import cache
from typing import Any, BinaryIO


@cache
def _s3() -> Any:
    import boto3
    from botocore.config import Config

    # Virtual-hosted addressing fails against a local endpoint; path style works everywhere.
    return boto3.client("s3", config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))


def put_object(bucket: str, key: str, body: bytes, content_type: str) -> None:
    _s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def presigned_upload_url(bucket: str, key: str, expires_in: int) -> str:
    return str(
        _s3().generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key, "ContentType": "text/csv"}, ExpiresIn=expires_in
        )
    )


def upload_file(bucket: str, key: str, path: str, content_type: str) -> None:
    """A local file to S3, in parts when large (boto3's managed transfer)."""
    _s3().upload_file(path, bucket, key, ExtraArgs={"ContentType": content_type})


def presigned_download_url(bucket: str, key: str, expires_in: int) -> str:
    return str(_s3().generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in))


class MissingObjectError(Exception):
    pass


def open_object(bucket: str, key: str) -> tuple[BinaryIO, int]:
    """A stream of the object's bytes, read as it is consumed, and its size."""
    client = _s3()
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey as exc:
        raise MissingObjectError(key) from exc
    body: BinaryIO = response["Body"]
    return body, int(response["ContentLength"])
