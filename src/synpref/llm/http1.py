"""A small keep-alive HTTP/1.1 client on asyncio streams: :class:`LLMClient`'s transport to plain-``http://`` endpoints.

httpx spends about 1 ms of CPU per call in its client, httpcore's pool and anyio; against a fast
endpoint on the same machine or network (vLLM, SGLang, llama.cpp, the stub of :mod:`.testing`)
that was the judge step's limit. This client sends each request in one write, reads an answer
framed by ``Content-Length``, chunks or the end of the connection, and keeps up to ``limit`` idle
connections. Its failures are httpx's own exceptions (``ConnectError``, ``ReadTimeout``,
``RemoteProtocolError``, ...), so the client retries exactly as with httpx. Connecting, sending and
receiving the answer each get ``timeout`` seconds (httpx: between two reads, the same for an answer
that is not streamed). ``https://`` endpoints, URLs with credentials and endpoints reached through a
proxy (``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY``, as httpx reads them) keep httpx: :func:`direct`.
"""

from __future__ import annotations

import asyncio
import urllib.request
import zlib
from urllib.parse import urlsplit

import httpx


def direct(base_url: str) -> bool:
    """Whether :class:`Http1Pool` serves ``base_url``: plain http, no credentials, no proxy configured for its host."""
    u = urlsplit(base_url)
    if u.scheme != "http" or not u.hostname or u.username or u.password:
        return False
    proxies = urllib.request.getproxies_environment()
    if not (proxies.get("http") or proxies.get("all")):
        return True
    return bool(urllib.request.proxy_bypass_environment(u.hostname, proxies))


class Http1Pool:
    def __init__(self, base_url: str, headers: dict[str, str], timeout: float, limit: int):
        u = urlsplit(base_url)
        self.host, self.port, self.timeout, self.limit = u.hostname, u.port or 80, timeout, max(1, limit)
        self.prefix = u.path.rstrip("/") + "/"
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._headers = f"Host: {u.netloc}\r\nAccept: */*\r\nUser-Agent: synpref\r\nContent-Type: application/json\r\n{extra}"
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, content: bytes) -> tuple[int, bytes]:
        """(status, body) of ``POST base_url/path`` with the JSON bytes ``content``; raises httpx's exceptions."""
        conn = self._take()
        phase = "connect"
        try:
            if conn is None:
                async with asyncio.timeout(self.timeout):
                    conn = await asyncio.open_connection(self.host, self.port)  # asyncio sets TCP_NODELAY
            reader, writer = conn
            phase = "write"
            writer.write(f"POST {self.prefix}{path} HTTP/1.1\r\n{self._headers}Content-Length: {len(content)}\r\n\r\n".encode()
                         + content)
            async with asyncio.timeout(self.timeout):
                await writer.drain()
                phase = "read"
                status, body, keep = await _read_response(reader)
        except BaseException as e:
            if conn is not None:
                conn[1].close()
            if isinstance(e, TimeoutError):
                raise {"connect": httpx.ConnectTimeout, "write": httpx.WriteTimeout, "read": httpx.ReadTimeout}[phase](
                    f"no {phase} within {self.timeout} s") from e
            if isinstance(e, asyncio.IncompleteReadError):
                raise httpx.RemoteProtocolError("Server disconnected without sending a complete response.") from e
            if isinstance(e, (OSError, ValueError, zlib.error)):
                cls = {"connect": httpx.ConnectError, "write": httpx.WriteError}.get(phase, httpx.ReadError)
                raise (cls if isinstance(e, OSError) else httpx.RemoteProtocolError)(str(e) or type(e).__name__) from e
            raise
        if keep and len(self._idle) < self.limit:
            self._idle.append(conn)
        else:
            writer.close()
        return status, body

    def _take(self):
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():  # the server may have closed it while idle
                return reader, writer
            writer.close()
        return None

    async def aclose(self) -> None:
        while self._idle:
            self._idle.pop()[1].close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection can be reused) of one HTTP/1.x response."""
    while True:
        line = await reader.readline()
        if not line:
            raise asyncio.IncompleteReadError(b"", None)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ValueError(f"not an HTTP/1.x status line: {line[:80]!r}")
        status = int(parts[1])
        headers = {}
        while (h := await reader.readline()) not in (b"\r\n", b"\n"):
            if not h:
                raise asyncio.IncompleteReadError(b"", None)
            name, _, value = h.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()
        if status >= 200 or status == 101:
            break  # 1xx interim answers precede the real one
    keep = parts[0] == b"HTTP/1.1" and headers.get(b"connection") != b"close"
    if status in (204, 304):
        body = b""
    elif b"chunked" in headers.get(b"transfer-encoding", b""):
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):  # trailers
            pass
        body = b"".join(chunks)
    elif b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    else:
        body, keep = await reader.read(), False
    encoding = headers.get(b"content-encoding", b"identity")
    if encoding in (b"gzip", b"deflate"):  # never asked for (no Accept-Encoding), decoded if sent anyway
        body = zlib.decompress(body, 47 if encoding == b"gzip" else 15)  # 47: gzip or zlib header
    elif encoding != b"identity":
        raise ValueError(f"unsupported Content-Encoding {encoding.decode(errors='replace')}")
    return status, body, keep
