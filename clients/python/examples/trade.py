#!/usr/bin/env python3
"""A trading desk's loop against Powerplane, once.

1. Publishes a NIV estimate and an imbalance price for the current GB settlement period.
2. Submits a dispatch for the whole site for the rest of that period (the next one too when
   fewer than 5 minutes remain): ``--kw`` kW, positive = discharge (export), negative =
   charge, with a request id that makes the call safe to retry.
3. Watches the site's setpoints until every active battery of the site has verified a
   setpoint that follows that dispatch (written, then read back from the battery), or one
   failed, or ``--timeout`` passes, and prints a summary. A battery whose telemetry is
   missing or stale is held at 0 kW (FAILSAFE) and is not counted as following it.

Exit code: 0 every battery verified, 1 a battery's setpoint FAILED, 2 timed out, 3 a call
was refused or the site has no active battery (the message says which).

    python3 examples/trade.py --target 127.0.0.1:50051 --token "$(cat ../../.powerplane/admin.token)" --site site-a
"""

import argparse
import datetime as dt
import queue
import sys
import threading
import time
import uuid
from typing import Dict, NoReturn, Optional, Union

import _local  # noqa: F401  (the package from ../src; see _local.py)

from google.protobuf.struct_pb2 import Struct
from google.protobuf.timestamp_pb2 import Timestamp

from powerplane_client import PowerplaneClient, PowerplaneError, ServerStream, connect, v1

EXIT_VERIFIED, EXIT_FAILED, EXIT_TIMEOUT, EXIT_ERROR = 0, 1, 2, 3
SETTLEMENT_PERIOD = dt.timedelta(minutes=30)
SHORTEST_WINDOW = dt.timedelta(minutes=5)
CONTROL_STATE_POLL_S = 2.0


class Parser(argparse.ArgumentParser):
    """Exits 3 on a bad flag, keeping 2 for a timeout."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def parse_args() -> argparse.Namespace:
    parser = Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="the server, HOST:PORT (e.g. 127.0.0.1:50051)")
    parser.add_argument(
        "--token", required=True, help="bearer token with dispatch:write, marketdata:write and readings:read"
    )
    parser.add_argument("--site", required=True, help="the site to dispatch")
    parser.add_argument("--kw", type=float, default=20.0, help="site power in kW, positive = discharge (default 20)")
    parser.add_argument("--niv-mw", type=float, default=-150.0, help="NIV estimate to publish, MW (default -150)")
    parser.add_argument(
        "--imbalance-price", type=float, default=85.0, help="imbalance price to publish, GBP/MWh (default 85)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for verification (default 60)")
    parser.add_argument("--tls", action="store_true", help="connect with TLS (system CAs)")
    return parser.parse_args()


def timestamp(at: dt.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp


def settlement_period_start(now: dt.datetime) -> dt.datetime:
    """The start of the GB settlement period holding ``now`` (periods start on the UTC half hour)."""
    return now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)


def watch_in_background(
    stream: "ServerStream[v1.SetpointEvent]", events: "queue.Queue[Union[v1.SetpointEvent, Exception]]"
) -> None:
    def run() -> None:
        try:
            for event in stream:
                events.put(event)
        except Exception as error:  # handed to the main thread, which reports it
            events.put(error)

    threading.Thread(target=run, name="watch-setpoints", daemon=True).start()


def main() -> int:
    args = parse_args()
    now = dt.datetime.now(dt.timezone.utc)
    period = settlement_period_start(now)
    end = period + SETTLEMENT_PERIOD
    if end - now < SHORTEST_WINDOW:
        end += SETTLEMENT_PERIOD

    with connect(args.target, token=args.token, tls=args.tls or None) as pp:
        try:
            batteries = {
                d.id: d for d in pp.devices.list_devices_all(site=args.site, type=v1.DEVICE_TYPE_BESS, active=True)
            }
            if not batteries:
                print(f"site {args.site} has no active battery", file=sys.stderr)
                return EXIT_ERROR

            origin = Struct()
            origin.update({"source": "powerplane_client examples/trade.py"})
            published = pp.dispatch.publish_market_data(
                points=[
                    v1.MarketDataPoint(time=timestamp(period), type="niv_estimate", value=args.niv_mw, metadata=origin),
                    v1.MarketDataPoint(
                        time=timestamp(period), type="imbalance_price", value=args.imbalance_price, metadata=origin
                    ),
                ]
            )
            print(
                f"market data for the period from {period:%Y-%m-%d %H:%M}Z: NIV {args.niv_mw} MW, imbalance price "
                f"{args.imbalance_price} GBP/MWh ({published.stored_count} stored, {published.unchanged_count} unchanged, "
                f"{published.revised_count} revised)"
            )

            # Watch before submitting, so no event of the new setpoints is missed.
            stream = pp.dispatch.watch_setpoints(site=args.site)
            events: "queue.Queue[Union[v1.SetpointEvent, Exception]]" = queue.Queue()
            watch_in_background(stream, events)

            request_id = str(uuid.uuid4())
            submitted = pp.dispatch.submit_dispatch(
                request_id=request_id,
                site=args.site,
                intervals=[v1.DispatchInterval(start_time=timestamp(now), end_time=timestamp(end), power_kw=args.kw)],
            )
            instruction = submitted.instructions[0]
            print(
                f"dispatch {instruction.id} (request id {request_id}): site {args.site} at {args.kw:g} kW "
                f"until {end:%H:%M}Z, {len(batteries)} batteries"
            )
            try:
                code, last, reasons = follow(pp, args, batteries, instruction.id, events)
            finally:
                stream.cancel()
            states = {s.device_id: s for s in pp.dispatch.get_control_state(site=args.site).states}
        except PowerplaneError as error:
            print(f"refused: {error}", file=sys.stderr)
            return EXIT_ERROR

    summarize(batteries, last, reasons, states, args.kw, code)
    return code


def on_dispatch(event: v1.SetpointEvent) -> bool:
    """Whether a battery verified a setpoint that follows the dispatch (not one held at 0 kW
    as FAILSAFE because its telemetry is missing or stale)."""
    return event.phase == v1.SETPOINT_PHASE_VERIFIED and event.command_source == v1.COMMAND_SOURCE_DISPATCH


def follow(
    pp: PowerplaneClient,
    args: argparse.Namespace,
    batteries: Dict[str, v1.Device],
    instruction_id: str,
    events: "queue.Queue[Union[v1.SetpointEvent, Exception]]",
) -> "tuple[int, Dict[str, v1.SetpointEvent], Dict[str, str]]":
    """Folds the setpoint events of the instruction, per battery, until every battery has
    verified one that follows the dispatch, one FAILED, or the timeout. Returns the exit
    code, the last event per battery and the planner's reason per setpoint id. The stream
    is completed by polling GetControlState, which also catches a battery verified before
    the watch was in place."""
    last: Dict[str, v1.SetpointEvent] = {}
    reasons: Dict[str, str] = {}
    deadline = time.monotonic() + args.timeout
    next_poll = 0.0

    def fold(event: v1.SetpointEvent) -> Optional[int]:
        if event.instruction_id != instruction_id or event.device_id not in batteries:
            return None
        if event.reason:
            reasons[event.setpoint_id] = event.reason
        done = last.get(event.device_id)
        if done is not None and on_dispatch(done):
            return None
        last[event.device_id] = event
        if event.phase == v1.SETPOINT_PHASE_FAILED:
            return EXIT_FAILED
        return EXIT_VERIFIED if all(d in last and on_dispatch(last[d]) for d in batteries) else None

    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return EXIT_TIMEOUT, last, reasons
        if time.monotonic() >= next_poll:
            next_poll = time.monotonic() + CONTROL_STATE_POLL_S
            for state in pp.dispatch.get_control_state(site=args.site).states:
                if state.HasField("last_event"):
                    code = fold(state.last_event)
                    if code is not None:
                        return code, last, reasons
        try:
            item = events.get(timeout=min(remaining, CONTROL_STATE_POLL_S))
        except queue.Empty:
            continue
        if isinstance(item, Exception):
            raise item
        code = fold(item)
        if code is not None:
            return code, last, reasons


def summarize(
    batteries: Dict[str, v1.Device],
    last: Dict[str, v1.SetpointEvent],
    reasons: Dict[str, str],
    states: Dict[str, v1.BatteryControlState],
    kw: float,
    code: int,
) -> None:
    outcome = {EXIT_VERIFIED: "VERIFIED", EXIT_FAILED: "FAILED", EXIT_TIMEOUT: "TIMED OUT"}[code]
    print(f"{'battery':<20} {'phase':<10} {'setpoint kW':>12} {'after ms':>9}  reason")
    total = 0.0
    verified = 0
    for device_id, device in sorted(batteries.items(), key=lambda item: item[1].name):
        event = last.get(device_id)
        if event is None:
            why = states[device_id].reason if device_id in states else ""
            print(f"{device.name:<20} {'-':<10} {'-':>12} {'-':>9}  no setpoint of this dispatch: {why or '?'}")
            continue
        phase = v1.SetpointPhase.Name(event.phase)[len("SETPOINT_PHASE_") :]
        if event.command_source == v1.COMMAND_SOURCE_FAILSAFE:
            phase = "HELD"
        elapsed_ms = event.elapsed.seconds * 1000 + event.elapsed.nanos // 1_000_000
        reason = event.reason or reasons.get(event.setpoint_id, "")
        print(f"{device.name:<20} {phase:<10} {event.target_power_kw:>12.2f} {elapsed_ms:>9}  {reason}")
        if on_dispatch(event):
            verified += 1
            total += event.target_power_kw
    print(f"{outcome}: {total:.2f} of {kw:.2f} kW verified on {verified} of {len(batteries)} batteries")


if __name__ == "__main__":
    sys.exit(main())
