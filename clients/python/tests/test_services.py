"""Every service of a real server reached through the client, and readings.py on known readings."""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from typing import List
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.struct_pb2 import Struct

from powerplane_client import PowerplaneClient, v1
from processes import Serve, run_example

LONDON = ZoneInfo("Europe/London")


def meter(site: str, name: str, unit_id: int = 1) -> v1.Device:
    access = v1.ModbusAccess(
        endpoint=v1.ModbusEndpoint(host="127.0.0.1", port=5020, unit_id=unit_id),
        register_profile=v1.REGISTER_PROFILE_SUNSPEC,
    )
    return v1.Device(name=name, site=site, type=v1.DEVICE_TYPE_METER, meter=v1.MeterSpec(modbus=access))


def at(moment: dt.datetime) -> v1.TimeRange:
    """A TimeRange whose start is ``moment`` (end set by the caller)."""
    time_range = v1.TimeRange()
    time_range.start_time.FromDatetime(moment)
    return time_range


def test_token_service_says_who_the_caller_is(client: PowerplaneClient) -> None:
    caller = client.tokens.get_caller()
    assert caller.principal.startswith("token:")
    assert "registry:admin" in caller.scopes


def test_registry_creates_gets_and_lists_a_device(client: PowerplaneClient) -> None:
    site = f"svc-{uuid.uuid4().hex[:8]}"
    created = client.devices.create_device(device=meter(site, "grid")).device
    assert created.id and created.active and created.site == site
    assert client.devices.get_device(id=created.id).device.name == "grid"
    assert [d.id for d in client.devices.list_devices_all(site=site)] == [created.id]


def test_list_all_follows_next_page_token_across_pages(client: PowerplaneClient) -> None:
    site = f"pages-{uuid.uuid4().hex[:8]}"
    names = [f"m{i}" for i in range(5)]
    for i, name in enumerate(names):
        client.devices.create_device(device=meter(site, name, unit_id=i + 1))
    first = client.devices.list_devices(site=site, page_size=2)
    assert len(first.devices) == 2 and first.next_page_token
    listed = [d.name for d in client.devices.list_devices_all(site=site, page_size=2)]
    assert sorted(listed) == names


def test_dispatch_service_publishes_and_lists_market_data(client: PowerplaneClient) -> None:
    when = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=3)
    value = float(uuid.uuid4().int % 1000)
    point = v1.MarketDataPoint(type="wholesale_price", value=value)
    point.time.FromDatetime(when)
    origin = Struct()
    origin.update({"test": "test_services"})
    point.metadata.CopyFrom(origin)
    published = client.dispatch.publish_market_data(points=[point])
    assert published.stored_count + published.revised_count == 1
    # The same point again is a no-op: why the client may retry PublishMarketData.
    assert client.dispatch.publish_market_data(points=[point]).unchanged_count == 1
    listing = v1.ListMarketDataRequest(types=["wholesale_price"])
    listing.start_time.FromDatetime(when)
    listing.end_time.FromDatetime(when + dt.timedelta(minutes=1))
    assert [p.value for p in client.dispatch.list_market_data_all(listing)] == [value]


def test_telemetry_and_readings_services_and_the_readings_example(client: PowerplaneClient, server: Serve) -> None:
    site = f"read-{uuid.uuid4().hex[:8]}"
    device = client.devices.create_device(device=meter(site, "grid")).device
    # Readings every 10 minutes over the two settlement periods that ended an hour ago:
    # 6 kW import, the import counter up 1 kWh per reading, so each complete period's
    # delta is 3 kWh.
    start = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    start = start.replace(minute=start.minute - start.minute % 30) - dt.timedelta(hours=1, minutes=30)
    readings: List[v1.MeterReading] = []
    for i in range(10):
        reading = v1.MeterReading(device_id=device.id, power_total_active_kw=6.0, energy_imported_active_kwh=100.0 + i)
        reading.time.FromDatetime(start + dt.timedelta(minutes=10 * i))
        readings.append(reading)
    ack = client.telemetry.write_readings(batch=v1.ReadingBatch(sequence=1, meter_readings=readings)).ack
    assert (ack.stored_count, ack.rejected_count) == (10, 0)

    time_range = at(start)
    time_range.end_time.FromDatetime(start + dt.timedelta(hours=1))
    periods = client.readings.list_settlement_periods(device_ids=[device.id], range=time_range).periods
    assert [(p.complete, round(p.energy_imported_active_delta_kwh, 3)) for p in periods] == [(True, 3.0), (True, 3.0)]
    buckets = list(client.readings.list_meter_aggregates_all(device_ids=[device.id], range=time_range, page_size=2))
    assert len(buckets) == 6 and all(b.power_total_active_avg_kw == 6.0 for b in buckets)

    day = start.astimezone(LONDON).date().isoformat()
    run = run_example(
        "readings.py", "--target", server.target, "--token", server.admin_token, "--meter", device.id, "--date", day
    )
    assert run.returncode == 0, run.stderr
    period_text, aggregate_text = run.stdout.split("\n\n")
    rows = list(csv.DictReader(io.StringIO(period_text)))
    mine = [r for r in rows if r["start_time"] == periods[0].start_time.ToJsonString()]
    assert len(mine) == 1
    assert (mine[0]["energy_imported_active_delta_kwh"], mine[0]["complete"]) == ("3", "true")
    assert mine[0]["settlement_date"] == periods[0].settlement_date
    # One reading per 5-minute bucket: the buckets of the day start at the readings' times.
    on_day = [
        r.time.ToJsonString()
        for r in readings
        if r.time.ToDatetime().replace(tzinfo=dt.timezone.utc).astimezone(LONDON).date().isoformat() == day
    ]
    buckets_csv = list(csv.DictReader(io.StringIO(aggregate_text)))
    assert [r["bucket_start_time"] for r in buckets_csv] == on_day
    assert {r["power_total_active_avg_kw"] for r in buckets_csv} == {"6"}


def test_readings_example_names_a_bad_date() -> None:
    run = run_example("readings.py", "--target", "127.0.0.1:1", "--token", "t", "--meter", "m", "--date", "1 May")
    assert run.returncode == 2
    assert "--date must be YYYY-MM-DD (got '1 May')" in run.stderr


def test_a_request_and_keyword_fields_together_are_refused(client: PowerplaneClient) -> None:
    with pytest.raises(TypeError, match="not both"):
        client.devices.list_devices(v1.ListDevicesRequest(site="a"), page_size=2)
    with pytest.raises(TypeError, match="must be a ListDevicesRequest"):
        client.devices.list_devices(v1.GetDeviceRequest(id="x"))


def test_list_all_checks_its_request_at_the_call_not_at_the_first_page(client: PowerplaneClient) -> None:
    with pytest.raises(TypeError, match="not both"):
        client.devices.list_devices_all(v1.ListDevicesRequest(site="a"), page_size=2)
    with pytest.raises(ValueError, match="no_such_field"):
        client.devices.list_devices_all(no_such_field=1)
