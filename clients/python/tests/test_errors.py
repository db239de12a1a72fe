"""The server's errors as the client raises them: the class of the code, the field in the message."""

from __future__ import annotations

import uuid

import grpc
import pytest

from powerplane_client import (
    InvalidArgumentError,
    NotFoundError,
    PowerplaneClient,
    ResourceExhaustedError,
    UnauthenticatedError,
    connect,
    v1,
)
from processes import Serve


def test_bad_input_is_invalid_argument_naming_the_field_and_value(client: PowerplaneClient) -> None:
    bess = v1.BessSpec(
        rated_charge_power_kw=100,
        rated_discharge_power_kw=100,
        capacity_kwh=200,
        min_soe_percent=80,
        max_soe_percent=20,
        modbus=v1.ModbusAccess(
            endpoint=v1.ModbusEndpoint(host="127.0.0.1", port=5020, unit_id=1),
            register_profile=v1.REGISTER_PROFILE_SUNSPEC,
        ),
    )
    device = v1.Device(name="bad", site=f"err-{uuid.uuid4().hex[:8]}", type=v1.DEVICE_TYPE_BESS, bess=bess)
    with pytest.raises(InvalidArgumentError) as raised:
        client.devices.create_device(device=device)
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "device.bess.min_soe_percent" in raised.value.message
    assert "(got 80)" in raised.value.message
    assert str(raised.value).startswith("invalid_argument: ")


def test_an_unknown_id_is_not_found(client: PowerplaneClient) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.devices.get_device(id=str(uuid.uuid4()))
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_a_wrong_token_is_unauthenticated(server: Serve) -> None:
    with connect(server.target, token="pp_not-a-token") as pp:
        with pytest.raises(UnauthenticatedError):
            pp.tokens.get_caller()


def test_a_rate_limit_is_resource_exhausted_with_the_servers_retry_info(
    client: PowerplaneClient, server: Serve
) -> None:
    # The session's server allows token administration 1 a second after a burst of 2 per
    # caller; a fresh caller's calls in a row meet the limit within a few calls.
    secret = client.tokens.create_token(name="rate limited", scopes=["tokens:admin"]).secret
    with connect(server.target, token=secret) as pp:
        with pytest.raises(ResourceExhaustedError) as raised:
            for i in range(50):
                pp.tokens.create_token(name=f"burst {i}", scopes=["tokens:admin"])
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The delay comes from the google.rpc.RetryInfo in grpc-status-details-bin.
    assert raised.value.retry_delay is not None
    assert 0 < raised.value.retry_delay <= 1.0
