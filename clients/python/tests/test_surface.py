"""The typed layer covers the whole generated API, so a method added to proto/ cannot be
left without its wrapper."""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any, List, Tuple

import grpc
import pytest

import powerplane_client._gen as generated
from powerplane_client import PowerplaneClient, connect, retry, v1
from powerplane_client.services.devices import DeviceRegistryServiceClient

# Every generated message module, so a service added to proto/ is checked without a change here.
FILES = [
    importlib.import_module(f"{generated.__name__}.{info.name}")
    for info in pkgutil.iter_modules(generated.__path__)
    if info.name.endswith("_pb2")
]
ATTRIBUTE = {
    "TokenService": "tokens",
    "DeviceRegistryService": "devices",
    "TelemetryService": "telemetry",
    "ReadingsService": "readings",
    "DispatchService": "dispatch",
    "FleetService": "fleet",
}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def methods() -> List[Tuple[str, Any]]:
    return [
        (service.name, method)
        for module in FILES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    ]


@pytest.fixture
def pp() -> Any:
    with connect("127.0.0.1:1") as client:
        yield client


def test_every_service_of_the_api_is_an_attribute_of_the_client(pp: PowerplaneClient) -> None:
    services = {
        module.DESCRIPTOR.services_by_name[name].name for module in FILES for name in module.DESCRIPTOR.services_by_name
    }
    assert services == set(ATTRIBUTE)
    for name, attribute in ATTRIBUTE.items():
        assert getattr(pp, attribute).stub.__class__.__name__ == f"{name}Stub"


@pytest.mark.parametrize("service,method", methods(), ids=lambda v: getattr(v, "name", v))
def test_every_rpc_has_a_snake_case_method(pp: PowerplaneClient, service: str, method: Any) -> None:
    wrapper = getattr(getattr(pp, ATTRIBUTE[service]), snake(method.name), None)
    assert callable(wrapper), f"{service}.{method.name} has no {snake(method.name)}()"
    if "page_token" in method.input_type.fields_by_name:
        assert callable(getattr(getattr(pp, ATTRIBUTE[service]), f"{snake(method.name)}_all", None))


@pytest.mark.parametrize("service,method", methods(), ids=lambda v: getattr(v, "name", v))
def test_no_request_field_is_shadowed_by_a_keyword_of_the_wrappers(service: str, method: Any) -> None:
    assert not {"request", "timeout", "metadata"} & set(method.input_type.fields_by_name)


def test_the_retried_calls_are_the_reads_the_request_id_writes_and_publish_market_data() -> None:
    retried = sorted(m.name for _, m in methods() if retry.is_idempotent(m.name, m.input_type))
    assert retried == [
        "BatchUpsertDevices",
        "CreateDevice",
        "GetCaller",
        "GetControlState",
        "GetDevice",
        "GetDispatch",
        "GetFleetSummary",
        "GetLatestBessState",
        "GetSiteConfig",
        "ListBatterySeries",
        "ListBessReadings",
        "ListDatumReadings",
        "ListDevices",
        "ListDispatches",
        "ListMarketData",
        "ListMeterAggregates",
        "ListMeterReadings",
        "ListSettlementPeriods",
        "ListTokens",
        "PublishMarketData",
        "SubmitDispatch",
    ]


def test_connect_refuses_a_target_without_a_port_and_a_deadline_of_zero() -> None:
    with pytest.raises(ValueError, match="target must be host:port"):
        connect("localhost")
    with pytest.raises(ValueError, match="timeout must be above 0"):
        connect("127.0.0.1:1", timeout=0)


def test_a_retry_policy_refuses_no_attempts_and_backoffs_out_of_order() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        retry.RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="initial_backoff"):
        retry.RetryPolicy(initial_backoff=3, max_backoff=2)


class _ScriptedPages:
    """An invoker answering each call with the next of ``pages``; records the page tokens asked for."""

    def __init__(self, pages: List[Any]) -> None:
        self.pages = list(pages)
        self.asked: List[str] = []

    def unary(self, method: str, call: Any, request: Any, timeout: Any, metadata: Any) -> Any:
        self.asked.append(request.page_token)
        return self.pages.pop(0)


def test_list_all_stops_with_an_error_when_the_server_repeats_a_page_token() -> None:
    page = lambda name, token: v1.ListDevicesResponse(devices=[v1.Device(name=name)], next_page_token=token)  # noqa: E731
    invoker = _ScriptedPages([page("a", "t1"), page("b", "t2"), page("c", "t1")])
    with grpc.insecure_channel("127.0.0.1:1") as channel:  # never dialled: the invoker answers
        devices = DeviceRegistryServiceClient(channel, invoker)  # type: ignore[arg-type]
        names: List[str] = []
        with pytest.raises(RuntimeError, match="ListDevices returned the page token 't1' twice"):
            for device in devices.list_devices_all(site="s"):
                names.append(device.name)
    assert names == ["a", "b", "c"]
    assert invoker.asked == ["", "t1", "t2"]
