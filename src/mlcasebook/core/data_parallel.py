"""Data-parallel training over the CPU cores of one machine (gloo on loopback).

Why: small models gain little from more intra-op threads, and two processes with one thread each
keep both cores busier (measured on the 2-core box with benchmarks/translate_workers.py, a d128
Transformer: 1 thread 2,053 target tokens/s, 2 threads 2,713, 2 processes 3,043). Every process
holds the whole model; after each backward pass the gradients are summed across processes
(one all-reduce of a flat buffer), so every process takes the same optimizer step and the
weights stay equal — the exact full-batch gradient when each process scales its loss by its
share of the batch's tokens.

The calling process is rank 0 and keeps control (checkpoints, evaluation, logging, when to
stop); helpers are spawned processes that wait for rank 0's command before every step
(``command``), so they never run ahead and they exit when rank 0 says stop. They are daemons:
if rank 0 dies they are killed with it (or, after ``kill -9``, give up at the gloo timeout).
"""

from __future__ import annotations

import datetime
import multiprocessing
import socket
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

TIMEOUT = datetime.timedelta(minutes=15)  # longest rank 0 may pause between steps (evaluation, checkpoints)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def join(rank: int, size: int, port: int, threads: int) -> None:
    """Enter the process group (helpers call this first thing)."""
    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size,
                            timeout=TIMEOUT)


class Group:
    """This process's view of the group; ``Group.start`` makes rank 0 and spawns the helpers."""

    def __init__(self, rank: int, size: int, helpers: Sequence[multiprocessing.Process] = ()):
        self.rank, self.size, self.helpers = rank, size, list(helpers)

    @classmethod
    def start(cls, size: int, helper: Callable[..., None], args: tuple[Any, ...]) -> Group:
        """Spawn ``size - 1`` processes running ``helper(rank, size, port, threads, *args)`` (a module-level
        function that calls ``join`` first) and join the group as rank 0. Threads are shared out evenly."""
        port = _free_port()
        threads = max(1, torch.get_num_threads() // size)
        context = multiprocessing.get_context("spawn")  # fork after torch's thread pools start can deadlock
        helpers = [context.Process(target=helper, args=(rank, size, port, threads, *args), daemon=True)
                   for rank in range(1, size)]
        for process in helpers:
            process.start()
        join(0, size, port, threads)
        return cls(0, size, helpers)

    def command(self, values: Sequence[int] = ()) -> list[int]:
        """Rank 0 sends ``values`` (a fixed-length list of ints), the others receive them."""
        message = torch.tensor(list(values), dtype=torch.long) if self.rank == 0 else torch.zeros(len(values),
                                                                                                 dtype=torch.long)
        dist.broadcast(message, src=0)
        return message.tolist()

    def broadcast_module(self, module: nn.Module) -> None:
        """Every process gets rank 0's weights and buffers."""
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)

    def sum_gradients(self, parameters: Sequence[nn.Parameter], extra: torch.Tensor) -> torch.Tensor:
        """Sum every parameter's gradient over the processes in place (a missing gradient counts as
        zero) in one all-reduce, together with ``extra`` (e.g. the loss); returns the summed extra."""
        parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel()) for p in parameters]
        flat = torch.cat([*parts, extra.reshape(-1).to(torch.float32)])
        dist.all_reduce(flat)
        offset = 0
        for p in parameters:
            chunk = flat[offset: offset + p.numel()].view_as(p)
            if p.grad is None:
                p.grad = chunk.clone()
            else:
                p.grad.copy_(chunk)
            offset += p.numel()
        return flat[offset:].reshape(extra.shape)

    def abort(self) -> None:
        """Rank 0 failed mid-run: kill the helpers instead of waiting for them, then leave the group."""
        for process in self.helpers:
            process.terminate()
        self.close()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
        for process in self.helpers:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
