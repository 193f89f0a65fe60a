"""The key goes only where it is meant to: plain http only to this machine and never through
a proxy, https through a proxy only as a CONNECT tunnel, chunks only to the base URL's server,
and the key's value out of every message, even when the provider quotes it back."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import api
from runner.cli import main
from runner.emulator import Emulator, Faults
from runner.errors import ProviderError
from runner.providers.gemini import GeminiProvider
from runner.retry import Backoff

SECRET = "AIzaSy-TRUST-0123456789abcdef0123456789"
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class Recorder(socketserver.ThreadingTCPServer):
    """A proxy that takes in whatever is sent to it and refuses to forward anything."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.received = bytearray()
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Refuse)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def text(self) -> str:
        with self.lock:
            return self.received.decode("latin-1")


class _Refuse(socketserver.BaseRequestHandler):
    server: Recorder

    def handle(self) -> None:
        self.request.settimeout(2)
        try:
            data = self.request.recv(65536)
        except OSError:
            return
        with self.server.lock:
            self.server.received += data
        self.request.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """A recording proxy named in every proxy variable of the environment."""
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    for var in PROXY_VARS:
        monkeypatch.setenv(var, server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def secret_emu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(tmp_path / "emu", latency=0.3) as e:
        monkeypatch.setenv("GEMINI_API_KEY", SECRET)
        monkeypatch.setenv("GEMINI_BASE_URL", e.base_url)
        monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
        yield e


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: "), err
    return err


@pytest.mark.parametrize("base", ["http://127.attacker.example", "http://127.0.0.1.nip.io:8089",
                                  "http://localhost.example", "http://10.0.0.8:8089",
                                  "http://[::ffff:8.8.8.8]", "ftp://127.0.0.1"])
def test_plain_http_is_refused_off_this_machine(base: str, proj: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.setenv("GEMINI_BASE_URL", base)
    assert main(["plan", str(proj)]) == 1
    line = one_error_line(capsys)
    assert "GEMINI_BASE_URL" in line and SECRET not in line


@pytest.mark.parametrize("base", ["http://localhost:1", "http://127.0.0.1:1", "http://127.9.9.9",
                                  "http://[::1]:1", "https://generativelanguage.googleapis.com"])
def test_loopback_and_https_are_accepted(base: str) -> None:
    GeminiProvider(SECRET, base).close()


def test_the_embedded_emulator_ignores_proxies(proj: Path, proxy: Recorder,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """With every proxy variable set, --emulator works, and the proxy hears nothing."""
    monkeypatch.setenv("RUNNER_EMULATOR_LATENCY", "0.2")
    monkeypatch.setenv("RUNNER_POLL_SECONDS", "0.05")
    assert main(["apply", str(proj), "--emulator"]) == 0
    assert len((proj / "out/tiny.jsonl").read_text().splitlines()) == 2
    assert proxy.text() == ""


def test_a_loopback_base_url_goes_direct_past_a_proxy(proj: Path, secret_emu: Emulator,
                                                      proxy: Recorder) -> None:
    assert main(["apply", str(proj)]) == 0
    assert proxy.text() == ""


def test_https_reaches_a_proxy_only_as_a_tunnel(proxy: Recorder) -> None:
    """The proxy sees `CONNECT host:443` and nothing else: the key stays inside TLS."""
    provider = GeminiProvider(SECRET, "https://generativelanguage.googleapis.com",
                              max_attempts=2, backoff=Backoff(0.01, 0.02))
    with pytest.raises(ProviderError, match=r"^list batches \(page 1\) failed: ProxyError"):
        list(provider.list_jobs())
    provider.close()
    seen = proxy.text()
    assert seen.startswith("CONNECT generativelanguage.googleapis.com:443 HTTP/1.1\r\n")
    assert "x-goog-api-key" not in seen.lower() and SECRET not in seen


def test_a_proxy_httpx_cannot_use_is_one_line(proj: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    monkeypatch.delenv("GEMINI_BASE_URL", raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:proxy-password@127.0.0.1:1")
    assert main(["plan", str(proj)]) == 1
    line = one_error_line(capsys)
    assert "HTTPS_PROXY" in line and "proxy-password" not in line


def _listening_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("elsewhere", ["another port", "https", "another host"])
def test_an_upload_url_on_another_server_gets_nothing(
        elsewhere: str, proj: Path, secret_emu: Emulator, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    trap, port = _listening_port()
    trap.settimeout(0.5)
    emu_port = secret_emu.base_url.rsplit(":", 1)[1]
    secret_emu.faults = Faults(upload_url={
        "another port": f"http://127.0.0.1:{port}",
        "https": f"https://127.0.0.1:{emu_port}",
        "another host": f"http://localhost:{emu_port}"}[elsewhere])
    monkeypatch.setenv("RUNNER_INLINE_LIMIT", "10")       # sent as a file, not inline
    assert main(["apply", str(proj)]) == 1
    line = one_error_line(capsys)
    assert line.startswith("error: start upload of tiny-") and line.endswith(
        "refusing to send the file and the key there")
    with pytest.raises(TimeoutError):
        trap.accept()           # nobody came knocking
    trap.close()


def test_a_key_quoted_back_by_the_provider_is_redacted(proj: Path, secret_emu: Emulator,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Error answers and a failed job's error both quote the key: it is printed, recorded
    and raised as ***."""
    secret_emu.faults = Faults(echo_key=True, fail=True)
    assert main(["apply", str(proj)]) == 1
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "tiny: job failed: The batch failed (emulated fault). [API key: ***] (code 13)" \
        in out.out.splitlines()
    for path in proj.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    assert "[API key: ***]" in (proj / "batches.lock").read_text()
    secret_emu.faults = Faults(echo_key=True, rate_503=1.0)
    provider = GeminiProvider(SECRET, secret_emu.base_url, max_attempts=2,
                              backoff=Backoff(0.01, 0.02))
    with pytest.raises(ProviderError, match=r" failed: HTTP 503: The service is currently "
                                            r"unavailable\. \[API key: \*\*\*\]$"):
        api.status(proj, provider=provider)
    provider.close()
