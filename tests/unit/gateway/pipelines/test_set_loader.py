"""The shared loader loop of the theo and expiring-position sets: first tick at start, a tick
soon after a poke, one on the timer, a failing tick never stops it, a clean stop."""

from __future__ import annotations

import threading
import time

import pytest

from gateway.pipelines.ebe import EbeLoader
from gateway.pipelines.pmc import TheoLoader
from gateway.pipelines.set_loader import SetLoader


class Counter:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls = 0
        self.threads: list[str] = []
        self.fail_first = fail_first
        self.changed = threading.Condition()

    def __call__(self) -> None:
        with self.changed:
            self.calls += 1
            self.threads.append(threading.current_thread().name)
            self.changed.notify_all()
        if self.calls <= self.fail_first:
            raise RuntimeError("disk on fire")

    def wait_for(self, calls: int, timeout: float = 5.0) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.calls >= calls, timeout)


def test_ticks_at_start_on_the_callers_thread_then_after_a_poke_on_its_own() -> None:
    tick = Counter()
    loader = SetLoader("demo", tick, interval_s=3600, settle_s=0.05)
    loader.start()
    try:
        assert tick.calls == 1 and tick.threads == [threading.current_thread().name]
        assert loader.healthy()
        started = time.monotonic()
        loader.poke("internal/demo/2026-12-18/meta.csv")
        assert tick.wait_for(2)
        assert time.monotonic() - started < 2.0  # the poke, not the hour-long timer
        assert tick.threads[1] == "demo-loader"
    finally:
        loader.stop(5)
    assert not loader.healthy()


def test_ticks_on_the_timer_without_a_poke() -> None:
    tick = Counter()
    loader = SetLoader("demo", tick, interval_s=0.1)
    loader.start()
    try:
        assert tick.wait_for(4)
    finally:
        loader.stop(5)


def test_a_failing_tick_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    tick = Counter(fail_first=2)
    loader = SetLoader("demo", tick, interval_s=0.05)
    loader.start()
    try:
        assert tick.wait_for(4)
        assert loader.healthy()
    finally:
        loader.stop(5)
    failures = [r for r in caplog.records if "demo loader: tick failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info is not None


def test_stop_during_the_settle_wait_returns_at_once() -> None:
    tick = Counter()
    loader = SetLoader("demo", tick, interval_s=3600, settle_s=30)
    loader.start()
    loader.poke()
    time.sleep(0.05)
    started = time.monotonic()
    loader.stop(5)
    assert time.monotonic() - started < 2.0
    assert tick.calls == 1 and not loader.healthy()


def test_theo_and_ebe_loaders_are_set_loaders() -> None:
    class Store:
        refreshed = 0

        def refresh(self) -> list[str]:
            self.refreshed += 1
            return []

        def latest(self) -> None:
            return None

    store = Store()
    theo = TheoLoader(store, interval_s=3600)  # type: ignore[arg-type]
    assert isinstance(theo, SetLoader) and theo.name == "theo"
    theo.start()
    try:
        assert store.refreshed == 1
        theo.poke()
        deadline = time.monotonic() + 5
        while store.refreshed < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.refreshed == 2
    finally:
        theo.stop(5)
    assert issubclass(EbeLoader, SetLoader)


def test_a_first_tick_runs_at_start_and_the_full_tick_follows_on_the_loaders_thread() -> None:
    light, full = Counter(), Counter()
    loader = SetLoader("demo", full, interval_s=3600, settle_s=0.01, first_tick=light)
    loader.start()
    try:
        assert light.calls == 1 and light.threads == [threading.current_thread().name]
        assert full.wait_for(1) and full.threads == ["demo-loader"]
    finally:
        loader.stop(5)
