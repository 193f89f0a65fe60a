"""A real S3 API server for the tests and benchmarks: moto's, in a process of its own, on a
free loopback port, reached over HTTP by s3fs as a bucket would be.

    python tests/s3server.py        # prints "port N" once listening; serves until stopped

moto checks `If-None-Match: *` and then stores the object, two steps another request can come
between, where S3 does both at once. So requests are served one at a time: a race a test
finds is between the clients, as it would be against S3, never inside moto.

`running(ignoring_conditions=True)` starts one that drops `If-None-Match` from every request
before moto sees it, as S3-compatible services that do not support conditional writes do
(s3fs: "only known to work on AWS S3, and may silently be ignored on other implementations").

`running()` starts one and stops it; `environment(endpoint)` is what a client needs to reach
it (credentials moto accepts, and the endpoint), set as a user's shell would set them: the
store's code reads nothing but what botocore reads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

STARTUP = 60.0      # seconds for the server to say its port


def environment(endpoint: str) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": endpoint,
            # nothing from the real ~/.aws of whoever runs the suite
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def fresh_prefix(endpoint: str, bucket: str, setenv: Callable[[str, str], object]) -> str:
    """The URL of a new prefix of `bucket` (made if need be) on the server at `endpoint`,
    with the environment a client needs set through `setenv` (a test's monkeypatch)."""
    from runner.store import open_store

    for name, value in environment(endpoint).items():
        setenv(name, value)
    url = f"s3://{bucket}/{uuid.uuid4().hex}"
    fs = open_store(url).backend.fs  # type: ignore[attr-defined]
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    return url


@contextlib.contextmanager
def running(ignoring_conditions: bool = False) -> Iterator[str]:
    """A server for the length of the block; its endpoint URL."""
    flags = ["--ignore-conditions"] if ignoring_conditions else []
    with subprocess.Popen([sys.executable, __file__, *flags], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], STARTUP)
            line = proc.stdout.readline() if ready else ""
            if not line.startswith("port "):
                raise RuntimeError(f"the S3 server did not start (said {line[:80]!r})")
            yield f"http://127.0.0.1:{int(line.split()[1])}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main() -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app = DomainDispatcherApplication(create_backend_app)
    one_at_a_time = threading.Lock()
    ignore = "--ignore-conditions" in sys.argv[1:]

    def serialised(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if ignore:
            environ.pop("HTTP_IF_NONE_MATCH", None)
        with one_at_a_time:
            return list(app(environ, start_response))

    server = make_server("127.0.0.1", 0, serialised, threaded=True)
    print(f"port {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
