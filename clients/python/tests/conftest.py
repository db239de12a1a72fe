"""Fixtures: one real ``powerplane serve`` for the session (PGlite in a temporary directory,
authentication on) and a client of it with the admin token."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from powerplane_client import PowerplaneClient, connect  # noqa: E402
from processes import Serve  # noqa: E402

SERVE_ENV = {
    # Plans every half second, so a dispatch reaches the batteries soon after it is submitted.
    "POWERPLANE_CONTROL_PERIOD_MS": "500",
    # Token administration limited to 1 call a second after a burst of 2 per caller, so a
    # test can meet the server's RESOURCE_EXHAUSTED with its RetryInfo.
    "POWERPLANE_TOKENS_RATE_PER_S": "1",
    "POWERPLANE_TOKENS_BURST": "2",
}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    serve = Serve(tmp_path_factory.mktemp("serve"), SERVE_ENV)
    try:
        yield serve
    finally:
        serve.stop()


@pytest.fixture(scope="session")
def client(server: Serve) -> Iterator[PowerplaneClient]:
    with connect(server.target, token=server.admin_token) as pp:
        yield pp
