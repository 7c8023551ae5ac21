"""A real server process on 127.0.0.1 for the server tests: started, waited for, read, stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``argv`` (after the Python executable) run with ``CLASSER_HOME=home``, ready when ``/health`` is 200."""

    def __init__(self, home: Path, argv: list[str], env: dict[str, str] | None = None, ready_s: float = 60,
                 port: int | None = None) -> None:
        self.home = home
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "CLASSER_HOME": str(home), **(env or {})}
        self.log = open(home / "server.log", "w+b")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, *argv], env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready in {ready_s:.0f} s: {self.output()}")
            time.sleep(0.1)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-4000:]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "classer_local.cli", *args], env=self.env, check=False,
                              capture_output=True, text=True, timeout=120)

    def new_key(self, name: str, *flags: str) -> str:
        res = self.cli("keys", "create", "--name", name, "--json", *flags)
        assert res.returncode == 0, res.stderr
        return str(json.loads(res.stdout)["key"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
