#!/usr/bin/env python3
"""A meter's day as CSV: its 30-minute GB settlement periods and its 5-minute aggregates.

The day is a GB settlement date (Europe/London): 48 periods, 46 or 50 on clock-change days.
Without ``--out`` both tables go to standard output, settlement periods first, separated
by an empty line; with ``--out DIR`` they are written to
``DIR/settlement-periods-<date>.csv`` and ``DIR/aggregates-5min-<date>.csv``. A value the
server left unset (no reading, no counter) is an empty cell. Powers are in kW, positive =
import from the grid; energies in kWh.

    python3 examples/readings.py --target 127.0.0.1:50051 --token "$(cat ../../.powerplane/admin.token)" \\
        --meter 0b7c...-uuid --date 2026-12-01
"""

import argparse
import csv
import datetime as dt
import os
import sys
from typing import IO, Iterable, List, Sequence
from zoneinfo import ZoneInfo

import _local  # noqa: F401  (the package from ../src; see _local.py)

from google.protobuf.message import Message

from powerplane_client import PowerplaneError, connect, v1

LONDON = ZoneInfo("Europe/London")

PERIOD_COLUMNS = [
    "settlement_date",
    "settlement_period",
    "start_time",
    "device_id",
    "power_total_active_avg_kw",
    "energy_imported_active_delta_kwh",
    "energy_exported_active_delta_kwh",
    "complete",
]
AGGREGATE_COLUMNS = [
    "bucket_start_time",
    "device_id",
    "reading_count",
    "frequency_avg_hz",
    "voltage_line_average_avg_v",
    "current_phase_average_avg_a",
    "power_total_active_avg_kw",
    "power_total_reactive_avg_kvar",
    "power_factor_total_avg",
    "energy_imported_active_min_kwh",
    "energy_imported_active_max_kwh",
    "energy_exported_active_min_kwh",
    "energy_exported_active_max_kwh",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="the server, HOST:PORT (e.g. 127.0.0.1:50051)")
    parser.add_argument("--token", required=True, help="bearer token with readings:read")
    parser.add_argument("--meter", required=True, help="the meter's device id (UUID)")
    parser.add_argument("--date", help="settlement date YYYY-MM-DD (default: today in Europe/London)")
    parser.add_argument("--out", help="write the two CSV files into this directory instead of standard output")
    args = parser.parse_args()
    try:
        args.day = dt.date.fromisoformat(args.date) if args.date else dt.datetime.now(LONDON).date()
    except ValueError:
        parser.error(f"--date must be YYYY-MM-DD (got {args.date!r})")
    return args


def day_range(day: dt.date) -> v1.TimeRange:
    """[local midnight, next local midnight) of ``day`` in Europe/London."""
    start = dt.datetime.combine(day, dt.time(), LONDON)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), LONDON)
    time_range = v1.TimeRange()
    time_range.start_time.FromDatetime(start.astimezone(dt.timezone.utc))
    time_range.end_time.FromDatetime(end.astimezone(dt.timezone.utc))
    return time_range


def cell(message: Message, field: str) -> str:
    """A field as CSV text: timestamps in RFC 3339, unset optional numbers empty."""
    value = getattr(message, field)
    if isinstance(value, Message):
        return value.ToJsonString() if message.HasField(field) else ""
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    if descriptor.has_presence and not message.HasField(field):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def write_csv(out: IO[str], columns: Sequence[str], rows: Iterable[Message]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([cell(row, column) for column in columns])
        count += 1
    return count


def main() -> int:
    args = parse_args()
    time_range = day_range(args.day)
    with connect(args.target, token=args.token) as pp:
        try:
            periods = pp.readings.list_settlement_periods(device_ids=[args.meter], range=time_range).periods
            aggregates: List[v1.MeterAggregate] = list(
                pp.readings.list_meter_aggregates_all(device_ids=[args.meter], range=time_range)
            )
        except PowerplaneError as error:
            print(f"refused: {error}", file=sys.stderr)
            return 1

    if args.out is None:
        write_csv(sys.stdout, PERIOD_COLUMNS, periods)
        sys.stdout.write("\n")
        write_csv(sys.stdout, AGGREGATE_COLUMNS, aggregates)
        return 0
    os.makedirs(args.out, exist_ok=True)
    for name, columns, rows in (
        (f"settlement-periods-{args.day}.csv", PERIOD_COLUMNS, periods),
        (f"aggregates-5min-{args.day}.csv", AGGREGATE_COLUMNS, aggregates),
    ):
        path = os.path.join(args.out, name)
        with open(path, "w", newline="") as out:
            count = write_csv(out, columns, rows)
        print(f"wrote {path} ({count} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
