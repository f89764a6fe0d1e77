"""python-telegram-bot's network layer on aiohttp instead of httpx.

PTB lets an application bring its own `BaseRequest` (`ApplicationBuilder.request(...)`).
The server already runs on aiohttp, whose client parses HTTP in C: every Bot API call the
outbox makes (a card sent or edited per answer) costs markedly less CPU than through
httpx and anyio (bench/README.md, the profile). The calls are what PTB builds: the same
URL, form fields (JSON-encoded values) or multipart for files, and PTB reads the answer.
"""

from __future__ import annotations

import aiohttp
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

USER_AGENT = BaseRequest.USER_AGENT


class AiohttpRequest(BaseRequest):
    """A `telegram.request.BaseRequest` on one `aiohttp.ClientSession` (made in `initialize`)."""

    def __init__(
        self,
        *,
        connections: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 5.0,
        write_timeout: float = 5.0,
        pool_timeout: float = 1.0,
    ) -> None:
        self.connections = connections
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                headers={"User-Agent": USER_AGENT},
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: object = BaseRequest.DEFAULT_NONE,
        write_timeout: object = BaseRequest.DEFAULT_NONE,
        connect_timeout: object = BaseRequest.DEFAULT_NONE,
        pool_timeout: object = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("this AiohttpRequest is not initialized")
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=_given(pool_timeout, self._pool_timeout)
            + _given(connect_timeout, self._connect_timeout),
            sock_read=_given(read_timeout, self._read_timeout),
        )
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            if request_data.contains_files:
                data = _multipart(request_data)
            else:
                data = request_data.json_parameters
        try:
            async with self._session.request(method, url, data=data, timeout=timeout) as resp:
                return resp.status, await resp.read()
        except TimeoutError as err:  # aiohttp raises asyncio's (= builtins') TimeoutError
            raise TimedOut from err
        except aiohttp.ClientError as err:
            raise NetworkError(f"aiohttp.{type(err).__name__}: {err}") from err


def _given(value: object, default: float) -> float:
    """PTB passes DEFAULT_NONE where the caller gave no timeout: use ours; None: no limit."""
    if value is BaseRequest.DEFAULT_NONE:
        return default
    if value is None:
        return 3600.0
    return float(value)  # type: ignore[arg-type]


def _multipart(request_data: RequestData) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, part in (request_data.multipart_data or {}).items():
        filename, content, mime = part if len(part) == 3 else (part[0], part[1], None)
        form.add_field(name, content, filename=filename, content_type=mime)
    return form
