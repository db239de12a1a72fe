#!/usr/bin/env python3
"""Registers a site's batteries and meters, as `powerplane simulate` serves them, and writes
the config of the site's edge agent.

With ``npx powerplane simulate --bess 2 --meters 1 --port 5020`` running, the defaults
register ``bess-1`` and ``bess-2`` (unit ids 1 and 2) and ``meter-1`` (unit id 3) at
127.0.0.1:5020 for the site, skip those already registered (active, same name), create a
token for the agent (``telemetry:write``, bound to the site) and write
``<site>.agent.json`` for ``npx powerplane agent --config <site>.agent.json``.

    python3 examples/register_site.py --target 127.0.0.1:50051 --token "$(cat ../../.powerplane/admin.token)" --site site-a
"""

import argparse
import json
import os
import sys
import tempfile
from typing import Dict, List

import _local  # noqa: F401  (the package from ../src; see _local.py)

from powerplane_client import PowerplaneError, connect, v1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="the server, HOST:PORT (e.g. 127.0.0.1:50051)")
    parser.add_argument("--token", required=True, help="bearer token with registry:admin and tokens:admin")
    parser.add_argument("--site", required=True, help="the site's name")
    parser.add_argument("--modbus", default="127.0.0.1:5020", help="the simulator's HOST:PORT (default 127.0.0.1:5020)")
    parser.add_argument("--bess", type=int, default=2, help="batteries, unit ids 1..N (default 2)")
    parser.add_argument("--meters", type=int, default=1, help="meters, unit ids after the batteries' (default 1)")
    parser.add_argument("--config", help="where to write the agent's config (default <site>.agent.json)")
    parser.add_argument("--spool", help="the agent's spool directory (default: under the system's temporary directory)")
    args = parser.parse_args()
    host, _, port = args.modbus.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        parser.error(f"--modbus must be HOST:PORT with a port from 1 to 65535 (got {args.modbus!r})")
    if args.bess < 0 or args.meters < 0 or args.bess + args.meters == 0 or args.bess + args.meters > 247:
        parser.error(f"--bess and --meters must be 0 or more, 1 to 247 together (got {args.bess} and {args.meters})")
    args.modbus_host, args.modbus_port = host, int(port)
    return args


def wanted_devices(args: argparse.Namespace) -> List[v1.Device]:
    def access(unit_id: int) -> v1.ModbusAccess:
        return v1.ModbusAccess(
            endpoint=v1.ModbusEndpoint(host=args.modbus_host, port=args.modbus_port, unit_id=unit_id),
            register_profile=v1.REGISTER_PROFILE_SUNSPEC,
        )

    batteries = [
        v1.Device(
            name=f"bess-{i}",
            site=args.site,
            type=v1.DEVICE_TYPE_BESS,
            bess=v1.BessSpec(
                rated_charge_power_kw=100,
                rated_discharge_power_kw=100,
                capacity_kwh=200,
                min_soe_percent=10,
                max_soe_percent=90,
                modbus=access(i),
            ),
        )
        for i in range(1, args.bess + 1)
    ]
    meters = [
        v1.Device(
            name=f"meter-{j}",
            site=args.site,
            type=v1.DEVICE_TYPE_METER,
            meter=v1.MeterSpec(modbus=access(args.bess + j)),
        )
        for j in range(1, args.meters + 1)
    ]
    return batteries + meters


def endpoint_of(device: v1.Device) -> Dict[str, object]:
    """The device's Modbus endpoint as the agent's config spells it."""
    access = device.bess.modbus if device.type == v1.DEVICE_TYPE_BESS else device.meter.modbus
    return {"host": access.endpoint.host, "port": access.endpoint.port, "unitId": access.endpoint.unit_id}


def main() -> int:
    args = parse_args()
    config_path = args.config or f"{args.site}.agent.json"
    spool = args.spool or os.path.join(tempfile.gettempdir(), f"powerplane-agent-{args.site}")
    with connect(args.target, token=args.token) as pp:
        try:
            known: Dict[str, v1.Device] = {d.name: d for d in pp.devices.list_devices_all(site=args.site, active=True)}
            registered: List[v1.Device] = []
            for device in wanted_devices(args):
                if device.name in known:
                    print(f"kept    {device.name:<10} {known[device.name].id}")
                    registered.append(known[device.name])
                    continue
                created = pp.devices.create_device(device=device).device
                print(f"created {created.name:<10} {created.id}")
                registered.append(created)
            agent_token = pp.tokens.create_token(
                name=f"agent {args.site}", scopes=["telemetry:write"], sites=[args.site]
            )
        except PowerplaneError as error:
            print(f"refused: {error}", file=sys.stderr)
            return 1

    url = args.target if args.target.startswith(("http://", "https://")) else f"http://{args.target}"
    config = {
        "site": args.site,
        "server": {"url": url, "token": agent_token.secret},
        "devices": [
            {
                "deviceId": d.id,
                "kind": "bess" if d.type == v1.DEVICE_TYPE_BESS else "meter",
                "endpoint": endpoint_of(d),
                "profile": "sunspec",
                "pollingIntervalMs": 1000,
            }
            for d in registered
        ],
        "spool": {"dir": spool},
    }
    # The file holds the agent's token: readable by its owner only.
    descriptor = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(config, out, indent=2)
        out.write("\n")
    print(f"wrote {config_path}; start the site's agent with: npx powerplane agent --config {config_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
