"""A simulated site end to end: ``powerplane simulate`` serves two batteries and a meter over
Modbus TCP, examples/register_site.py registers them and writes the agent's config,
``powerplane agent`` streams their readings, and dispatches reach the batteries."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Dict, Iterator, List

import pytest

from powerplane_client import AlreadyExistsError, PowerplaneClient, v1
from processes import Agent, Serve, Simulator, run_example

SITE = "site-a"
VERIFY_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def batteries(server: Serve, client: PowerplaneClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[List[str]]:
    """The ids of the site's batteries, with the simulator and the site's agent running."""
    work = tmp_path_factory.mktemp("fleet")
    simulator = Simulator(bess=2, meters=1)
    agent = None
    try:
        config = work / f"{SITE}.agent.json"
        registered = run_example(
            "register_site.py",
            *("--target", server.target, "--token", server.admin_token, "--site", SITE),
            *("--modbus", simulator.modbus, "--config", str(config), "--spool", str(work / "spool")),
        )
        assert registered.returncode == 0, registered.stdout + registered.stderr
        assert json.loads(config.read_text())["site"] == SITE
        agent = Agent(config)
        yield [d.id for d in client.devices.list_devices_all(site=SITE, type=v1.DEVICE_TYPE_BESS, active=True)]
    finally:
        if agent is not None:
            agent.stop()
        simulator.stop()


def window(minutes: int) -> v1.DispatchInterval:
    now = dt.datetime.now(dt.timezone.utc)
    interval = v1.DispatchInterval()
    interval.start_time.FromDatetime(now)
    interval.end_time.FromDatetime(now + dt.timedelta(minutes=minutes))
    return interval


def test_the_site_agent_config_names_every_registered_device(batteries: List[str], client: PowerplaneClient) -> None:
    assert len(batteries) == 2
    meters = list(client.devices.list_devices_all(site=SITE, type=v1.DEVICE_TYPE_METER))
    assert [m.name for m in meters] == ["meter-1"]


def test_watch_setpoints_yields_each_batterys_verified_setpoint(batteries: List[str], client: PowerplaneClient) -> None:
    with client.dispatch.watch_setpoints(site=SITE, timeout=VERIFY_TIMEOUT_S) as events:
        interval = window(10)
        interval.power_kw = 10
        instruction = client.dispatch.submit_dispatch(site=SITE, intervals=[interval]).instructions[0]
        verified: Dict[str, float] = {}
        for event in events:
            following = event.instruction_id == instruction.id and event.command_source == v1.COMMAND_SOURCE_DISPATCH
            if following and event.phase == v1.SETPOINT_PHASE_VERIFIED:
                verified[event.device_id] = event.target_power_kw
            if len(verified) == len(batteries):
                break
    assert sorted(verified) == sorted(batteries)
    assert sum(verified.values()) == pytest.approx(10)
    assert instruction.request_id  # filled in by the client


def test_a_request_id_reused_with_another_payload_is_already_exists(
    batteries: List[str], client: PowerplaneClient
) -> None:
    request_id = str(uuid.uuid4())
    first, second = window(5), window(5)
    first.power_kw, second.power_kw = 4, 6
    client.dispatch.submit_dispatch(request_id=request_id, site=SITE, intervals=[first], priority=-1000)
    with pytest.raises(AlreadyExistsError) as raised:
        client.dispatch.submit_dispatch(request_id=request_id, site=SITE, intervals=[second], priority=-1000)
    assert "request_id" in raised.value.message


def test_the_trade_example_exits_0_once_every_battery_is_verified(batteries: List[str], server: Serve) -> None:
    run = run_example(
        "trade.py",
        *("--target", server.target, "--token", server.admin_token, "--site", SITE, "--timeout", str(VERIFY_TIMEOUT_S)),
        timeout=VERIFY_TIMEOUT_S + 60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "VERIFIED: 20.00 of 20.00 kW verified on 2 of 2 batteries" in run.stdout


def test_the_trade_example_exits_3_naming_a_site_without_batteries(server: Serve) -> None:
    run = run_example("trade.py", "--target", server.target, "--token", server.admin_token, "--site", "nowhere")
    assert run.returncode == 3
    assert "site nowhere has no active battery" in run.stderr
