"""Retries, deadlines, request ids, the bearer token and stream iteration, against a small
gRPC server in the test that answers as each test scripts it (UNAVAILABLE with or without
RetryInfo, then OK). Waits between attempts go to a recorder instead of sleeping."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Any, Dict, Iterator, List, Optional, Tuple

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2

from powerplane_client import (
    InvalidArgumentError,
    PowerplaneClient,
    RetryPolicy,
    UnavailableError,
    connect,
    v1,
)
from powerplane_client._gen import auth_pb2_grpc, devices_pb2_grpc, dispatch_pb2_grpc
from powerplane_client._status import retry_delay_of

Failure = Tuple[grpc.StatusCode, Optional[float]]
"""A scripted failure: its code and the RetryInfo delay in seconds it carries (or None)."""


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encoded_status(code: grpc.StatusCode, message: str, retry_delay: float) -> bytes:
    """A google.rpc.Status (code 1, message 2, details 3) holding one google.rpc.RetryInfo."""
    delay = duration_pb2.Duration(seconds=int(retry_delay), nanos=round((retry_delay % 1) * 1e9))
    retry_info = _bytes_field(1, delay.SerializeToString())
    detail = any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=retry_info)
    return (
        _varint(1 << 3)
        + _varint(code.value[0])
        + _bytes_field(2, message.encode())
        + _bytes_field(3, detail.SerializeToString())
    )


class Scripted:
    """Answers each RPC from a list of failures, then OK; records every request it saw."""

    def __init__(self) -> None:
        self.failures: Dict[str, List[Failure]] = {}
        self.requests: Dict[str, List[Any]] = {}
        self.metadata: Dict[str, List[Dict[str, str]]] = {}
        self.deadlines: Dict[str, List[Optional[float]]] = {}
        self.lock = threading.Lock()

    def answer(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.requests.setdefault(method, []).append(request)
            self.metadata.setdefault(method, []).append(dict(context.invocation_metadata()))
            self.deadlines.setdefault(method, []).append(context.time_remaining())
            pending = self.failures.get(method, [])
            failure = pending.pop(0) if pending else None
        if failure is None:
            return
        code, delay = failure
        if delay is not None:
            context.set_trailing_metadata((("grpc-status-details-bin", encoded_status(code, "scripted", delay)),))
        context.abort(code, f"scripted {code.name}")


class Registry(devices_pb2_grpc.DeviceRegistryServiceServicer):
    def __init__(self, script: Scripted) -> None:
        self.script = script

    def GetDevice(self, request: v1.GetDeviceRequest, context: grpc.ServicerContext) -> v1.GetDeviceResponse:
        self.script.answer("GetDevice", request, context)
        return v1.GetDeviceResponse(device=v1.Device(id=request.id, name="found"))


class Tokens(auth_pb2_grpc.TokenServiceServicer):
    def __init__(self, script: Scripted) -> None:
        self.script = script

    def CreateToken(self, request: v1.CreateTokenRequest, context: grpc.ServicerContext) -> v1.CreateTokenResponse:
        self.script.answer("CreateToken", request, context)
        return v1.CreateTokenResponse(secret="pp_secret")


class Dispatch(dispatch_pb2_grpc.DispatchServiceServicer):
    def __init__(self, script: Scripted) -> None:
        self.script = script
        self.release = threading.Event()

    def SubmitDispatch(self, request: v1.SubmitDispatchRequest, context: grpc.ServicerContext) -> Any:
        self.script.answer("SubmitDispatch", request, context)
        return v1.SubmitDispatchResponse(instructions=[v1.DispatchInstruction(id="i-1", request_id=request.request_id)])

    def WatchSetpoints(self, request: v1.WatchSetpointsRequest, context: grpc.ServicerContext) -> Iterator[Any]:
        self.script.answer("WatchSetpoints", request, context)
        yield v1.WatchSetpointsResponse(events=[v1.SetpointEvent(setpoint_id="a"), v1.SetpointEvent(setpoint_id="b")])
        yield v1.WatchSetpointsResponse(events=[v1.SetpointEvent(setpoint_id="c")])
        if request.site == "endless":
            # Stays open until the client cancels (or the test ends).
            self.release.wait(30)


@pytest.fixture
def fake() -> Iterator[Tuple[str, Scripted, Dispatch]]:
    script = Scripted()
    dispatch = Dispatch(script)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    devices_pb2_grpc.add_DeviceRegistryServiceServicer_to_server(Registry(script), server)
    auth_pb2_grpc.add_TokenServiceServicer_to_server(Tokens(script), server)
    dispatch_pb2_grpc.add_DispatchServiceServicer_to_server(dispatch, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", script, dispatch
    finally:
        dispatch.release.set()
        server.stop(None)


def client_of(target: str, waits: List[float], **kwargs: Any) -> PowerplaneClient:
    return connect(target, token="tok", sleep=waits.append, **kwargs)


def test_a_read_is_retried_on_unavailable_after_the_retry_info_delay(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    script.failures["GetDevice"] = [(grpc.StatusCode.UNAVAILABLE, 0.25)]
    waits: List[float] = []
    with client_of(target, waits) as pp:
        assert pp.devices.get_device(id="d-1").device.name == "found"
    assert len(script.requests["GetDevice"]) == 2
    assert waits == [0.25]


def test_a_write_with_a_request_id_is_retried_with_the_same_generated_id(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    script.failures["SubmitDispatch"] = [(grpc.StatusCode.UNAVAILABLE, None), (grpc.StatusCode.UNAVAILABLE, None)]
    waits: List[float] = []
    with client_of(target, waits) as pp:
        request = v1.SubmitDispatchRequest(site="site-a")
        answer = pp.dispatch.submit_dispatch(request)
    ids = [r.request_id for r in script.requests["SubmitDispatch"]]
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0]
    assert answer.instructions[0].request_id == ids[0]
    assert request.request_id == ""  # the caller's message is left as it was
    # Full jitter: the n-th wait is drawn from [0, 0.1 * 2 ** (n - 1)].
    assert len(waits) == 2 and 0 <= waits[0] <= 0.1 and 0 <= waits[1] <= 0.2


def test_a_callers_request_id_is_sent_unchanged(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    with client_of(target, []) as pp:
        pp.dispatch.submit_dispatch(request_id="desk-42", site="site-a")
    assert [r.request_id for r in script.requests["SubmitDispatch"]] == ["desk-42"]


def test_a_call_that_is_not_idempotent_is_sent_once(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    script.failures["CreateToken"] = [(grpc.StatusCode.UNAVAILABLE, 0.01)]
    waits: List[float] = []
    with client_of(target, waits) as pp:
        with pytest.raises(UnavailableError) as raised:
            pp.tokens.create_token(name="n", scopes=["readings:read"])
    assert len(script.requests["CreateToken"]) == 1 and waits == []
    assert raised.value.retry_delay == pytest.approx(0.01)


def test_retries_stop_after_four_attempts(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    script.failures["GetDevice"] = [(grpc.StatusCode.UNAVAILABLE, 0.01)] * 10
    waits: List[float] = []
    with client_of(target, waits) as pp:
        with pytest.raises(UnavailableError):
            pp.devices.get_device(id="d-1")
    assert len(script.requests["GetDevice"]) == 4 and len(waits) == 3


def test_other_codes_are_not_retried(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    script.failures["GetDevice"] = [(grpc.StatusCode.INVALID_ARGUMENT, None)]
    with client_of(target, []) as pp:
        with pytest.raises(InvalidArgumentError):
            pp.devices.get_device(id="d-1")
    assert len(script.requests["GetDevice"]) == 1


def test_a_retry_info_delay_beyond_the_deadline_ends_the_call_without_waiting(
    fake: Tuple[str, Scripted, Dispatch]
) -> None:
    target, script, _ = fake
    script.failures["GetDevice"] = [(grpc.StatusCode.UNAVAILABLE, 120.0)]
    waits: List[float] = []
    with client_of(target, waits) as pp:
        with pytest.raises(UnavailableError) as raised:
            pp.devices.get_device(id="d-1", timeout=10)
    assert waits == [] and raised.value.retry_delay == 120.0


def test_retries_can_be_turned_off(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    script.failures["GetDevice"] = [(grpc.StatusCode.UNAVAILABLE, None)]
    with client_of(target, [], retry=RetryPolicy(max_attempts=1)) as pp:
        with pytest.raises(UnavailableError):
            pp.devices.get_device(id="d-1")
    assert len(script.requests["GetDevice"]) == 1


def test_unary_calls_carry_the_bearer_token_and_a_30_s_deadline(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, script, _ = fake
    with client_of(target, []) as pp:
        pp.devices.get_device(id="d-1")
        pp.devices.get_device(id="d-2", timeout=5)
    assert [m["authorization"] for m in script.metadata["GetDevice"]] == ["Bearer tok", "Bearer tok"]
    default, given = script.deadlines["GetDevice"]
    # The server's view of the deadline, give or take the clocks' granularity.
    assert default is not None and 20 < default < 31
    assert given is not None and given < 6


def test_a_server_stream_is_flattened_into_events_and_has_no_default_deadline(
    fake: Tuple[str, Scripted, Dispatch]
) -> None:
    target, script, _ = fake
    with client_of(target, []) as pp:
        with pp.dispatch.watch_setpoints(site="site-a") as events:
            assert [e.setpoint_id for e in events] == ["a", "b", "c"]
    # gRPC Python reports "no deadline" as a remaining time of centuries.
    (remaining,) = script.deadlines["WatchSetpoints"]
    assert remaining is None or remaining > 365 * 86400
    assert script.metadata["WatchSetpoints"][0]["authorization"] == "Bearer tok"


def test_cancelling_a_stream_ends_its_iteration_without_an_error(fake: Tuple[str, Scripted, Dispatch]) -> None:
    target, _, _ = fake
    with client_of(target, []) as pp:
        stream = pp.dispatch.watch_setpoints(site="endless")
        seen = [next(stream).setpoint_id, next(stream).setpoint_id, next(stream).setpoint_id]
        stream.cancel()
        assert seen == ["a", "b", "c"] and list(stream) == []


def test_backoff_doubles_from_100_ms_up_to_2_s() -> None:
    policy = RetryPolicy()
    upper = [policy.delay(n, rand=lambda low, high: high) for n in range(1, 8)]
    assert upper == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert policy.delay(3, rand=lambda low, high: low) == 0.0
    assert policy.delay(3, retry_info=1.5) == 1.5


def test_retry_info_decoding_ignores_malformed_details() -> None:
    assert retry_delay_of(encoded_status(grpc.StatusCode.UNAVAILABLE, "m", 1.25)) == pytest.approx(1.25)
    assert retry_delay_of(encoded_status(grpc.StatusCode.UNAVAILABLE, "m", 3600)) == 300.0
    assert retry_delay_of(b"\x1a\x05\x0a\x03abc") is None
    assert retry_delay_of(b"\x1a\xff") is None
    assert retry_delay_of(b"") is None
