"""What every service class shares: building requests and following pages."""

from __future__ import annotations

from typing import Any, Iterator, Optional, Type

from .._calls import Invoker, Metadata, Req, build_request


class ServiceClient:
    """One service's generated ``stub`` and the invoker that makes its calls."""

    def __init__(self, stub: Any, invoker: Invoker) -> None:
        self.stub = stub
        self._invoker = invoker

    def _unary(
        self,
        method: str,
        request_type: Type[Req],
        request: Optional[Req],
        fields: Any,
        timeout: Optional[float],
        metadata: Metadata,
    ) -> Any:
        """Calls the unary RPC ``method`` with the request (or one built from ``fields``)."""
        built = build_request(request_type, request, fields)
        return self._invoker.unary(method, getattr(self.stub, method), built, timeout, metadata)

    def _all(
        self,
        method: str,
        request_type: Type[Req],
        request: Optional[Req],
        fields: Any,
        timeout: Optional[float],
        metadata: Metadata,
        items: str,
    ) -> Iterator[Any]:
        """The ``items`` of every page of ``method``: each page is its own call (with its own
        deadline and retries) carrying the previous page's ``next_page_token``. The request
        is built and checked here, so a bad field fails at the call, not at the first
        ``next()``; the pages are fetched as the iterator is read."""
        page_request = request_type()
        page_request.CopyFrom(build_request(request_type, request, fields))
        return self._pages(method, request_type, page_request, timeout, metadata, items)

    def _pages(
        self,
        method: str,
        request_type: Type[Req],
        page_request: Req,
        timeout: Optional[float],
        metadata: Metadata,
        items: str,
    ) -> Iterator[Any]:
        seen = set()
        while True:
            page = self._unary(method, request_type, page_request, {}, timeout, metadata)
            yield from getattr(page, items)
            token = page.next_page_token
            if not token:
                return
            if token in seen:
                raise RuntimeError(f"{method} returned the page token {token!r} twice")
            seen.add(token)
            page_request.page_token = token
