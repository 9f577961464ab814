"""A load client for the server: N keep-alive clients posting one body for a bounded time.

Used by the load tests and by ``make bench``. Each client is a thread with its own HTTP/1.1
connection; every request has a timeout; a 503 is honoured by waiting its ``Retry-After`` (as
a well-behaved client does), and a broken connection is counted and replaced. The result
counts every outcome, so a test can assert "no resets, only 200 and 503".
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What ``clients`` clients saw in ``seconds``: statuses, failures, latencies of the 200s."""

    clients: int
    seconds: float
    statuses: Counter[int] = field(default_factory=Counter)
    resets: int = 0  # connections reset or closed under a request, or refused
    timeouts: int = 0  # requests not answered within the request timeout
    latencies: list[float] = field(default_factory=list)  # seconds, 200s only

    @property
    def requests_per_second(self) -> float:
        return self.statuses[200] / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """The ``q`` quantile (0-1) of the 200s' latency in seconds; 0.0 with none."""
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def summary(self) -> str:
        median = statistics.median(self.latencies) if self.latencies else 0.0
        return (
            f"{self.clients} clients, {self.seconds:.0f} s: {self.requests_per_second:.1f} rps, "
            f"p50 {1000 * median:.0f} ms, p99 {1000 * self.percentile(0.99):.0f} ms, "
            f"statuses {dict(sorted(self.statuses.items()))}, resets {self.resets}, timeouts {self.timeouts}"
        )


def _client(
    host: str,
    port: int,
    body: bytes,
    headers: dict[str, str],
    seconds: float,
    timeout: float,
    result: LoadResult,
    lock: threading.Lock,
    start: threading.Barrier,
) -> None:
    start.wait()
    deadline = time.monotonic() + seconds
    connection: http.client.HTTPConnection | None = None
    while time.monotonic() < deadline:
        if connection is None:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        began = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
        except TimeoutError:
            with lock:
                result.timeouts += 1
            connection.close()
            connection = None
            continue
        except (ConnectionError, http.client.HTTPException, OSError):
            with lock:
                result.resets += 1
            connection.close()
            connection = None
            continue
        elapsed = time.perf_counter() - began
        with lock:
            result.statuses[response.status] += 1
            if response.status == 200:
                result.latencies.append(elapsed)
        if response.will_close:
            connection.close()
            connection = None
        if response.status == 503:
            retry = float(response.getheader("retry-after") or 1)
            time.sleep(max(0.0, min(retry, deadline - time.monotonic())))
    if connection is not None:
        connection.close()


def run_load(
    host: str,
    port: int,
    *,
    body: bytes,
    content_type: str,
    clients: int,
    seconds: float,
    request_timeout: float = 30.0,
) -> LoadResult:
    """Post ``body`` from ``clients`` concurrent clients for ``seconds``; returns the LoadResult.

    Clients start together (a barrier), so the first second is the burst a backlog must absorb.
    """
    result = LoadResult(clients=clients, seconds=seconds)
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    headers = {"Content-Type": content_type, "Accept": "application/json"}
    threads = []
    for index in range(clients):
        thread = threading.Thread(
            target=_client,
            args=(host, port, body, headers, seconds, request_timeout, result, lock, start),
            name=f"load-{index}",
            daemon=True,
        )
        threads.append(thread)
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(seconds + request_timeout + 5)
    result.seconds = time.monotonic() - began
    return result
