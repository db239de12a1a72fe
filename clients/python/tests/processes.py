"""The real programs the tests run: ``powerplane serve``, ``simulate`` and ``agent``, each a
child process on 127.0.0.1 (port 0 where it listens), started with ``node bin/powerplane.js``
from the repository root and stopped by the test that started it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[3]
"""The repository root (clients/python/tests/ is three levels below it)."""

CLIENT = Path(__file__).resolve().parents[1]
"""clients/python."""

START_TIMEOUT_S = 90.0
"""How long a program may take to say it is ready (PGlite's first start migrates)."""

STOP_GRACE_S = 15.0
"""How long a program has to stop after SIGTERM before it is killed."""

KEPT_LINES = 2000


class Program:
    """A child process whose output lines are kept (the last :data:`KEPT_LINES`) and can be waited for."""

    def __init__(self, name: str, args: List[str], env: Dict[str, str]) -> None:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not on PATH")
        self.name = name
        self.lines: List[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [node, str(ROOT / "bin" / "powerplane.js"), *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, name=f"{name}-output", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                del self.lines[:-KEPT_LINES]
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, match: Callable[[str], Any], timeout: float = START_TIMEOUT_S) -> Any:
        """The first truthy ``match(line)`` over the lines seen and to come; a RuntimeError
        with the last lines when the program exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    found = match(line)
                    if found:
                        return found
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if self.process.poll() is not None or remaining <= 0:
                    why = f"exited with {self.process.returncode}" if self.process.poll() is not None else "timed out"
                    tail = "\n".join(self.lines[-30:])
                    raise RuntimeError(f"{self.name} {why} before the awaited line; its last lines:\n{tail}")
                self._changed.wait(min(remaining, 1.0))

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`; idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _env(extra: Dict[str, str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWERPLANE_") and k != "DATABASE_URL"}
    env.update(extra)
    return env


class Serve(Program):
    """``powerplane serve`` on PGlite in ``data_dir``, authentication on, listening on 127.0.0.1 port 0."""

    def __init__(self, data_dir: Path, env: Optional[Dict[str, str]] = None) -> None:
        super().__init__(
            "serve",
            ["serve"],
            _env(
                {
                    "POWERPLANE_LISTEN": "127.0.0.1:0",
                    "POWERPLANE_DATA_DIR": str(data_dir),
                    "POWERPLANE_LOG_LEVEL": "info",
                    **(env or {}),
                }
            ),
        )
        try:
            listening = self.wait_for(_listening)
        except BaseException:
            self.stop()
            raise
        self.port: int = int(listening["port"])
        self.target = f"127.0.0.1:{self.port}"
        self.admin_token = (data_dir / "admin.token").read_text().strip()


def _listening(line: str) -> Optional[Dict[str, Any]]:
    if "Powerplane listening on" not in line:
        return None
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) and "port" in entry else None


class Simulator(Program):
    """``powerplane simulate`` with ``bess`` batteries then ``meters`` meters on one free port."""

    def __init__(self, bess: int, meters: int) -> None:
        super().__init__(
            "simulate", ["simulate", "--bess", str(bess), "--meters", str(meters), "--port", "0"], _env({})
        )
        pattern = re.compile(r"simulator serving \d+ devices on (\S+) ports (\d+)")
        try:
            found = self.wait_for(pattern.search)
        except BaseException:
            self.stop()
            raise
        self.modbus = f"{found.group(1)}:{found.group(2)}"


class Agent(Program):
    """``powerplane agent --config FILE``."""

    def __init__(self, config: Path) -> None:
        super().__init__("agent", ["agent", "--config", str(config), "--drain-ms", "1000"], _env({}))
        try:
            self.wait_for(lambda line: "Powerplane agent for site" in line)
        except BaseException:
            self.stop()
            raise


def run_example(name: str, *args: str, timeout: float = 180.0) -> "subprocess.CompletedProcess[str]":
    """Runs ``examples/<name>`` with this interpreter, from clients/python, as a user would."""
    return subprocess.run(
        [sys.executable, str(CLIENT / "examples" / name), *args],
        cwd=CLIENT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
