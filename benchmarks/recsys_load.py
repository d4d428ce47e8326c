"""Load test of the live recommendation service, on loopback only.

Trains a model on the embedded MovieLens latest-small (or reuses --model-path), starts the real
service in a subprocess (`mlcasebook.recsys.serve.run`: uvicorn, one worker, a fresh rating store)
on a free 127.0.0.1 port, and sends a fixed number of requests on an open-loop schedule:
request i leaves at t0 + i/rate whether or not earlier ones have been answered, so a slow server
is not hidden by a client that waits for it. Latency is measured from the *scheduled* send time
(queueing in the client counts against the server, as it would for real users). Requests go to
random known users' recommendations; with --mixed, 5 % are POST ratings (stored durably and
folded in), whose latency is reported apart. The server is stopped in every case.

Besides latency it reports the server's CPU time per request (from /proc), which does not depend
on what else the machine is running, and the service's cache hits (--cache-ttl 0 turns it off).

The load generator: by default bare HTTP/1.1 over asyncio streams (`--client raw`). The
`httpx.AsyncClient` (`--client httpx`) spends ~3.5 ms of CPU per request at 200 req/s, three times
what the server spends answering it; on a 2-core machine it cannot keep a 200 req/s schedule (it
falls behind, queues, and its latency, not the server's, fills the tail), so it is kept for
comparison and for faster machines.

    .venv/bin/python benchmarks/recsys_load.py --json docs/results/recsys_load.json
    .venv/bin/python benchmarks/recsys_load.py --mixed --json docs/results/recsys_load_mixed.json
    .venv/bin/python benchmarks/recsys_load.py --model popularity --rate 50 --duration 5   # smoke

Client and server share this machine's cores, so the latencies are an upper bound on what the service
alone would show.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from common import console, load_benchmark_data
from mlcasebook.core.report import write_json
from mlcasebook.recsys.models.registry import load_model, model_class

HOST = "127.0.0.1"  # loopback only: this benchmark never opens a port to the network
POST_SHARE = 0.05


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def serve(argv: list[str]) -> None:
    """The server subprocess: MODEL_PATH PORT STORE DATASET CACHE_TTL_S."""
    from mlcasebook.recsys.serve import run

    model_path, port, store, dataset, cache_ttl_s = argv
    watch_parent()
    run(Path(model_path), items=load_benchmark_data(dataset).items, host=HOST, port=int(port),
        store_path=Path(store), log_level="warning", cache_ttl_s=float(cache_ttl_s))


def watch_parent() -> None:
    """Stop this server if the benchmark that started it dies (even by SIGKILL, when its own
    clean-up cannot run): a load-test server must never outlive its test."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)  # uvicorn's clean shutdown

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def start_server(model_path: Path, store_path: Path, port: int, dataset: str, log_path: Path,
                 threads: int | None, cache_ttl_s: float) -> subprocess.Popen:
    env = os.environ.copy()
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                "OPENBLAS_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--serve", str(model_path), str(port), str(store_path), dataset,
               str(cache_ttl_s)]
    log = log_path.open("wb")
    # A new session, so stopping it can signal the whole group (uvicorn and anything it spawned).
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop_server(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGINT)  # uvicorn shuts down cleanly on SIGINT
        server.wait(timeout=15)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait(timeout=15)


def wait_until_ready(server: subprocess.Popen, base_url: str, log_path: Path, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode}:\n{_tail(log_path)}")
        try:
            response = httpx.get(f"{base_url}/health", timeout=2.0)
            if response.status_code == 200:
                return response.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"server not ready after {timeout_s:.0f} s:\n{_tail(log_path)}")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def plan_requests(n: int, users: np.ndarray, items: np.ndarray, mixed: bool, k: int,
                  rng: np.random.Generator) -> list[tuple[str, str, dict | None]]:
    """(method, path, json body) for each request, drawn up front so sending costs nothing extra."""
    who = rng.choice(users, size=n)
    posts = rng.random(n) < POST_SHARE if mixed else np.zeros(n, dtype=bool)
    what = rng.choice(items, size=n)
    stars = rng.integers(1, 11, size=n) / 2.0
    return [("POST", f"/users/{u}/ratings", {"item_id": int(i), "rating": float(r)}) if post
            else ("GET", f"/users/{u}/recommendations?k={k}", None)
            for u, i, r, post in zip(who, what, stars, posts, strict=True)]


class HttpxClient:
    """The reference client (httpx.AsyncClient, keep-alive pool)."""

    def __init__(self, port: int, timeout_s: float):
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
        self.timeout_s = timeout_s
        self.client = httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=timeout_s)

    async def request(self, method: str, path: str, body: dict | None) -> int:
        try:  # httpx's own timeout is per phase (pool wait, connect, read); this one bounds the whole request
            async with asyncio.timeout(self.timeout_s):
                return (await self.client.request(method, path, json=body)).status_code
        except (httpx.HTTPError, TimeoutError):
            return 0

    async def aclose(self) -> None:
        await self.client.aclose()


class RawClient:
    """Bare HTTP/1.1 keep-alive requests over asyncio streams. httpx spends ~1.6 ms of CPU per
    request, about as much as the server; on a small machine that CPU is taken from the server
    being measured. This client spends ~0.2 ms. It reads only the status and a Content-Length body,
    which is all the service sends."""

    KEEP_IDLE_S = 3.0  # uvicorn closes keep-alive connections idle for 5 s; never reuse one that old

    def __init__(self, port: int, timeout_s: float):
        self.port, self.timeout_s = port, timeout_s
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, method: str, path: str, body: dict | None) -> int:
        payload = b"" if body is None else json.dumps(body).encode()
        message = (f"{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(message)
        except (OSError, TimeoutError, ValueError, IndexError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            return 0

    async def _exchange(self, message: bytes) -> int:
        while self.idle:
            idle_since, reader, writer = self.idle.pop()
            if time.monotonic() - idle_since < self.KEEP_IDLE_S and not reader.at_eof():
                break
            writer.close()
        else:
            reader, writer = await asyncio.open_connection(HOST, self.port)
        try:
            writer.write(message)
            header = (await reader.readuntil(b"\r\n\r\n")).lower()
            status = int(header[9:12])
            length = int(header.split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if b"connection: close" in header:
            writer.close()
        else:
            self.idle.append((time.monotonic(), reader, writer))
        return status

    async def aclose(self) -> None:
        for _, _, writer in self.idle:
            writer.close()


CLIENTS = {"httpx": HttpxClient, "raw": RawClient}


async def send_all(port: int, plan: list, rate: float, timeout_s: float, client_kind: str = "raw",
                   max_in_flight: int = 256) -> dict:
    """Send ``plan`` on schedule. A request due while ``max_in_flight`` are still unanswered is not
    sent and counts as an error ("dropped"): past that point the server (or this client) cannot
    keep up, and queueing thousands of requests would only make the client itself collapse."""
    n = len(plan)
    latency = np.full(n, np.nan)  # from the scheduled send time
    service = np.full(n, np.nan)  # from the actual send time
    lateness = np.zeros(n)  # how far behind schedule the client itself was
    status = np.zeros(n, dtype=np.int64)  # 0: transport error or timeout, -1: dropped
    client = CLIENTS[client_kind](port, timeout_s)
    in_flight = 0
    try:
        async def fire(i: int, scheduled: float) -> None:
            nonlocal in_flight
            sent = time.perf_counter()
            lateness[i] = sent - scheduled
            try:
                status[i] = await client.request(*plan[i])
            finally:
                in_flight -= 1
            done = time.perf_counter()
            latency[i], service[i] = done - scheduled, done - sent

        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(n):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= max_in_flight:
                status[i] = -1
                continue
            in_flight += 1
            tasks.append(asyncio.create_task(fire(i, scheduled)))
        sending_done = time.perf_counter()
        # Every request has its own timeout; this bound only guards against a client that fell so
        # far behind that requests are still waiting to start. What is left then counts as errors.
        _, unfinished = await asyncio.wait(tasks, timeout=timeout_s + 5) if tasks else (set(), set())
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        finished = time.perf_counter()
    finally:
        await client.aclose()
    return {"latency": latency, "service": service, "lateness": lateness, "status": status,
            "send_s": sending_done - start, "total_s": finished - start, "unfinished": len(unfinished)}


def _status_name(status: int) -> str:
    return {0: "transport/timeout", -1: "dropped (too many in flight)"}.get(int(status), str(status))


def summarise(result: dict, plan: list, rate: float) -> dict:
    posts = np.array([method == "POST" for method, _, _ in plan])
    expected = np.where(posts, 201, 200)
    ok = result["status"] == expected

    def percentiles(mask: np.ndarray) -> dict:
        values = result["latency"][mask & ok] * 1000
        if not len(values):
            return {"requests": int(mask.sum()), "ok": 0}
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {"requests": int(mask.sum()), "ok": int(len(values)), "p50_ms": round(float(p50), 2),
                "p90_ms": round(float(p90), 2), "p99_ms": round(float(p99), 2),
                "max_ms": round(float(values.max()), 2), "mean_ms": round(float(values.mean()), 2)}

    n = len(plan)
    statuses, counts = np.unique(result["status"][~ok], return_counts=True)
    return {"target_rate": rate, "requests": n,
            "achieved_send_rate": round((n - 1) / max(result["send_s"], 1e-9), 1),
            "throughput": round(int(ok.sum()) / max(result["total_s"], 1e-9), 1),
            "errors": int((~ok).sum()), "unfinished_at_deadline": result["unfinished"],
            "errors_by_status": {_status_name(s): int(c) for s, c in zip(statuses, counts, strict=True)},
            "client_lateness_p99_ms": round(float(np.percentile(result["lateness"], 99) * 1000), 2),
            "all": percentiles(np.ones(n, dtype=bool)), "recommendations": percentiles(~posts),
            "ratings": percentiles(posts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ease", help="registered model name to train and serve")
    parser.add_argument("--model-path", type=Path, help="serve this saved model instead of training one")
    parser.add_argument("--dataset", default="movielens-small")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (open loop)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--mixed", action="store_true", help=f"{POST_SHARE:.0%} of requests POST a rating")
    parser.add_argument("--warmup", type=int, default=100, help="requests sent first and not counted")
    parser.add_argument("--max-in-flight", type=int, default=256,
                        help="a request due while this many are unanswered is dropped (counted as an error)")
    parser.add_argument("--server-threads", type=int, default=None,
                        help="OMP/MKL/OpenBLAS threads in the server (default: library default)")
    parser.add_argument("--cache-ttl", type=float, default=30.0,
                        help="the service's recommendation cache lifetime, seconds (0: no cache)")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw",
                        help="load generator: bare asyncio HTTP/1.1 (~0.5 ms CPU/request) or httpx.AsyncClient "
                             "(~3.5 ms; cannot hold 200 req/s on 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2:])
        return
    args = parser.parse_args()
    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the `finally` that stops the server runs.
    signal.signal(signal.SIGTERM, _interrupt)
    if args.rate <= 0 or args.duration <= 0 or not 1 <= args.k <= 100:
        parser.error("--rate and --duration must be positive and --k within 1..100")

    data = load_benchmark_data(args.dataset)
    with tempfile.TemporaryDirectory(prefix="recsys-load-") as scratch:
        scratch = Path(scratch)
        fit_s = None
        if args.model_path is None:
            model_path = scratch / f"{args.model}.ckpt"
            started = time.perf_counter()
            model = model_class(args.model)().fit(data)
            fit_s = time.perf_counter() - started
            model.save(model_path)
            console.print(f"trained {args.model} on {data.name} in {fit_s:.1f} s")
        else:
            model_path = args.model_path
            model = load_model(model_path)
        users, items = model.user_ids_.copy(), model.item_ids_.copy()
        del model  # the server holds its own copy; free this process's memory for the client

        port = free_port()
        log_path = scratch / "server.log"
        server = start_server(model_path, scratch / "ratings.sqlite", port, data.name, log_path,
                              args.server_threads, args.cache_ttl)
        base_url = f"http://{HOST}:{port}"
        try:
            started = time.perf_counter()
            health = wait_until_ready(server, base_url, log_path, timeout_s=300)
            startup_s = time.perf_counter() - started
            rng = np.random.default_rng(args.seed)
            if args.warmup:
                warm = plan_requests(args.warmup, users, items, False, args.k, rng)
                asyncio.run(send_all(port, warm, args.rate, args.timeout, args.client))
            plan = plan_requests(int(round(args.rate * args.duration)), users, items, args.mixed, args.k, rng)
            console.print(f"{len(plan)} requests at {args.rate:g}/s to {base_url} "
                          f"({'mixed: 5 % ratings' if args.mixed else 'recommendations only'}) ...")
            load_avg_before = os.getloadavg()
            cache_before = httpx.get(f"{base_url}/health", timeout=60).json()["cache"]
            server_cpu, client_cpu = cpu_seconds(server.pid), time.process_time()
            result = asyncio.run(send_all(port, plan, args.rate, args.timeout, args.client, args.max_in_flight))
            server_cpu = None if server_cpu is None else cpu_seconds(server.pid) - server_cpu
            client_cpu = time.process_time() - client_cpu
            load_avg_after = os.getloadavg()
            try:  # an overloaded server may still be draining its backlog: wait, within reason
                final_health = httpx.get(f"{base_url}/health", timeout=60).json()
            except httpx.HTTPError:
                final_health = {"stored_ratings": None, "cache": cache_before}
            if server.poll() is not None:
                raise RuntimeError(f"server died during the run:\n{_tail(log_path)}")
        finally:
            stop_server(server)

    summary = summarise(result, plan, args.rate)
    report = {"settings": vars(args) | {"json": str(args.json) if args.json else None,
                                        "model_path": str(args.model_path) if args.model_path else None},
              "model": health["model"], "dataset": data.name, "users": health["users"], "items": health["items"],
              "fit_s": None if fit_s is None else round(fit_s, 1), "server_startup_s": round(startup_s, 1),
              "stored_ratings_after": final_health["stored_ratings"],
              "cache_hits": final_health["cache"]["hits"] - cache_before["hits"],
              "cache_misses": final_health["cache"]["misses"] - cache_before["misses"],
              "server_cpu_ms_per_request": None if server_cpu is None else round(server_cpu / len(plan) * 1000, 3),
              "client_cpu_ms_per_request": round(client_cpu / len(plan) * 1000, 3),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_avg_before": [round(x, 2) for x in load_avg_before],
                          "load_avg_after": [round(x, 2) for x in load_avg_after],
                          "date": time.strftime("%Y-%m-%d %H:%M:%S")}} | summary
    show(report)
    if args.json:
        write_json(args.json, report)
        console.print(f"wrote {args.json}")


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def show(report: dict) -> None:
    console.print(f"[bold]{report['model']}[/bold] on {report['dataset']} ({report['users']} users, "
                  f"{report['items']} items): target {report['target_rate']:g}/s, sent at "
                  f"{report['achieved_send_rate']:g}/s, {report['throughput']:g} ok/s, "
                  f"{report['errors']} errors {report['errors_by_status'] or ''}")
    console.print(f"  server CPU {report['server_cpu_ms_per_request']} ms/request, cache hits "
                  f"{report['cache_hits']}, misses {report['cache_misses']}, load average before/after "
                  f"{report['machine']['load_avg_before'][0]}/{report['machine']['load_avg_after'][0]} "
                  f"on {report['machine']['cpus']} CPUs")
    for part in ("recommendations", "ratings"):
        row = report[part]
        if row.get("ok"):
            console.print(f"  {part:16s} n={row['requests']:5d}  p50 {row['p50_ms']:7.2f} ms  "
                          f"p90 {row['p90_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms  max {row['max_ms']:7.2f} ms")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        console.print("interrupted; the server was stopped")
        sys.exit(130)
