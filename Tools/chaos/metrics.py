"""Redeliveries and inbox duplicates: every instance's /metrics scraped each second while the run goes on, summed
over the lifetimes of its processes (a restarted one counts from 0 again)."""

from __future__ import annotations

import collections
import threading

import requests

from chaos.client import session
from chaos.layout import HOST, INSTANCES, instance_port
from chaos.system import System

METRICS = ("pets_messages_redelivered_total", "pets_messages_duplicate_total")

class MetricsScraper:
    def __init__(self, system: System):
        self.system = system
        self.totals = {name: collections.Counter() for name in METRICS}
        self.last: dict[str, tuple[int | None, dict[str, float]]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self.scrape()

    def scrape(self) -> None:
        for name in INSTANCES:
            pid = self.system.service_pid(name)
            try:
                text = session().get(f"http://{HOST}:{instance_port(name)}/metrics", timeout=2).text
            except requests.RequestException:
                continue
            values = {metric: 0.0 for metric in METRICS}
            for line in text.splitlines():
                for metric in METRICS:
                    if line.startswith(metric):
                        try:
                            values[metric] += float(line.rsplit(" ", 1)[1])
                        except (IndexError, ValueError):
                            pass
            previous_pid, previous = self.last.get(name, (None, {}))
            for metric, value in values.items():
                before = previous.get(metric, 0.0)
                restarted = previous_pid is not None and pid is not None and pid != previous_pid
                # A drop, or a new pid, means a restarted process counting from 0: all of its value is new.
                delta = value if (restarted or value < before) else value - before
                self.totals[metric][name] += delta
            self.last[name] = (pid, values)

    def result(self) -> dict:
        return {
            "redeliveries": int(sum(self.totals["pets_messages_redelivered_total"].values())),
            "duplicatesDropped": int(sum(self.totals["pets_messages_duplicate_total"].values())),
            "redeliveriesPerInstance": {k: int(v) for k, v in self.totals["pets_messages_redelivered_total"].items() if v},
            "duplicatesPerInstance": {k: int(v) for k, v in self.totals["pets_messages_duplicate_total"].items() if v},
        }
