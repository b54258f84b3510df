"""A real S3-compatible server on loopback (moto's ThreadedMotoServer) with real credential checks.

moto accepts any credentials unless its IAM authentication is switched on; we switch it on after
creating one IAM user with full S3 rights, so a wrong key fails the way it fails on AWS (403
InvalidAccessKeyId) and every request's SigV4 signature is verified (which also proves a proxy in
front forwards requests faithfully).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

REGION = "us-east-1"
_S3_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}


@dataclass(frozen=True)
class S3Access:
    """Where and as whom to reach the store; builds client settings for s3fs and boto3."""

    endpoint_url: str
    key: str
    secret: str = field(repr=False)  # never printed in assertion messages

    def storage_options(self, max_attempts: int = 5, read_timeout_s: float = 10.0) -> dict[str, Any]:
        """s3fs.S3FileSystem kwargs (the same dict a pipeline config takes as storage_options).
        botocore's "standard" retry mode backs off exponentially on 5xx, throttling and dropped
        connections; s3fs adds its own retries on top for reads cut short and SlowDown."""
        retries = {"max_attempts": max_attempts, "mode": "standard"}
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": REGION},
            "config_kwargs": {"read_timeout": read_timeout_s, "connect_timeout": 5, "retries": retries},
        }

    def filesystem(self, s3fs_retries: int | None = None, **kwargs: Any) -> Any:
        """An uncached s3fs filesystem. s3fs_retries sets s3fs's own retry loop (not a constructor
        argument: a class attribute, 5 by default), which multiplies botocore's attempts."""
        import s3fs

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options(**kwargs))
        if s3fs_retries is not None:
            fs.retries = s3fs_retries
        return fs

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            config=Config(signature_version="s3v4"),  # pre-signed URLs in the X-Amz-Signature form
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
        )

    def with_endpoint(self, endpoint_url: str) -> S3Access:
        return S3Access(endpoint_url, self.key, self.secret)

    def with_secret(self, secret: str) -> S3Access:
        return S3Access(self.endpoint_url, self.key, secret)


class MotoS3:
    """ThreadedMotoServer on 127.0.0.1 (free port) with IAM authentication on. Use as a context manager.

    moto keeps its state per process, not per server: use bucket names unique to the test.
    """

    def __init__(self, auth: bool = True) -> None:
        self._auth = auth  # False: any credentials work (moto's default), e.g. for pre-signed URLs
        self._server: Any = None
        self.access: S3Access | None = None

    def __enter__(self) -> MotoS3:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.access = self._create_user()
        if self._auth:
            self._set_auth_after(0)
        return self

    def __exit__(self, *exc: object) -> None:
        self._set_auth_after(float("inf"))  # moto's switch is process-wide: leave it as we found it
        self._server.stop()

    def make_bucket(self, name: str) -> str:
        assert self.access is not None
        self.access.client().create_bucket(Bucket=name)
        return name

    def _create_user(self) -> S3Access:
        import boto3

        iam = boto3.client(
            "iam",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="bootstrap",
            aws_secret_access_key="x",
        )
        user = f"pipeline-{uuid.uuid4().hex[:8]}"  # IAM state outlives the server within a process
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="s3-all", PolicyDocument=json.dumps(_S3_ALL))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return S3Access(self.url, key["AccessKeyId"], key["SecretAccessKey"])

    def _set_auth_after(self, count: float) -> None:
        """moto checks credentials once it has seen `count` requests (0: from now on; inf: never).
        The server runs in this process, so this is what its /moto-api/reset-auth endpoint does."""
        from moto import settings
        from moto.core.authorization import ActionAuthenticatorMixin

        settings.INITIAL_NO_AUTH_ACTION_COUNT = count
        ActionAuthenticatorMixin.request_count = 0
