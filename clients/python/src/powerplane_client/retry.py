"""Which calls are retried, and how long to wait between attempts.

A call is retried only when repeating it cannot do a thing twice:

* reads: every ``Get*`` and ``List*`` method;
* writes that carry a ``request_id`` (``SubmitDispatch``, ``CreateDevice``,
  ``BatchUpsertDevices``): the client fills an empty ``request_id`` with a random UUID and
  sends the same one on every attempt, so the server stores the write once and answers a
  repeat with the first result;
* ``PublishMarketData``: the server stores a point identical to the latest revision of its
  (time, type) as a no-op, so publishing the same points again stores nothing new (only the
  counts of the answer differ: a repeat reports the points as unchanged).

Everything else (``CreateToken``, ``RevokeToken``, ``CancelDispatch``, ``SetControlMode``,
``SetSiteConfig``, ``UpdateDevice``, ``DeactivateDevice``, ``WriteReadings`` and the streams)
is sent once. Only UNAVAILABLE is retried, at most :attr:`RetryPolicy.max_attempts` attempts
in all, within the call's one deadline.
"""

from __future__ import annotations

import random
from typing import Callable, Optional

from google.protobuf.descriptor import Descriptor

IDEMPOTENT_WRITES = frozenset({"PublishMarketData"})
"""Writes without a ``request_id`` that are still safe to repeat (see the module's text)."""


class RetryPolicy:
    """Attempts and backoff for idempotent calls that end UNAVAILABLE.

    The wait before retry ``n`` (1 for the second attempt) is drawn uniformly from
    ``[0, min(max_backoff, initial_backoff * 2 ** (n - 1))]`` ("full jitter"), unless the
    status carried a ``google.rpc.RetryInfo``, whose delay is used instead.

    Args:
        max_attempts: attempts in all, first included; 1 turns retries off. Default 4.
        initial_backoff: the bound of the first wait, in seconds. Default 0.1.
        max_backoff: the largest bound, in seconds. Default 2.
    """

    def __init__(self, max_attempts: int = 4, initial_backoff: float = 0.1, max_backoff: float = 2.0) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 (got {max_attempts})")
        if initial_backoff < 0 or max_backoff < initial_backoff:
            raise ValueError(
                f"backoff must satisfy 0 <= initial_backoff <= max_backoff (got {initial_backoff}, {max_backoff})"
            )
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff

    def delay(
        self, retry: int, retry_info: Optional[float] = None, rand: Callable[[float, float], float] = random.uniform
    ) -> float:
        """Seconds to wait before retry number ``retry`` (1-based): ``retry_info`` when given, else full jitter."""
        if retry_info is not None:
            return retry_info
        return rand(0.0, min(self.max_backoff, self.initial_backoff * 2 ** (retry - 1)))

    def __repr__(self) -> str:
        return f"RetryPolicy(max_attempts={self.max_attempts}, initial_backoff={self.initial_backoff}, max_backoff={self.max_backoff})"


NO_RETRY = RetryPolicy(max_attempts=1)
"""A policy that sends every call once."""


def has_request_id(request: Descriptor) -> bool:
    """Whether a request message has a ``request_id`` field (an idempotency key)."""
    return "request_id" in request.fields_by_name


def is_idempotent(method: str, request: Descriptor) -> bool:
    """Whether the RPC ``method`` (its proto name, e.g. ``SubmitDispatch``) may be retried."""
    return method.startswith(("Get", "List")) or has_request_id(request) or method in IDEMPOTENT_WRITES
