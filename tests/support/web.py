"""The real ``posgate web`` process for tests: started on a free port, stopped by its pid."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.daemon import free_port

REPO = Path(__file__).resolve().parents[2]
SAMPLE_THEO = REPO / "config" / "samples" / "pmc" / "theo"


class WebProcess:
    """``posgate web --theo DIR`` as a child process; ``url`` is its base address."""

    def __init__(self, theo: Path = SAMPLE_THEO, *extra: str, log: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "--config", str(REPO / "no-such-config.toml")]
            + ["web", "--theo", str(theo), "--port", str(self.port), *extra],
            cwd=REPO,
            stdout=self._log,
            stderr=self._log,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"posgate web exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        raise TimeoutError("posgate web did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        if self._log is not subprocess.DEVNULL:
            self._log.close()
