"""The telemetry sampler: one batch of host, NVML, torch and paged readings per poll.

It polls on its own daemon thread at a capped rate, publishes immutable snapshots to a
callback, keeps the latest one and a ring-buffer history. A failing reading or callback is
recorded in `last_error` and polling goes on: telemetry must never stop a training run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from types import ModuleType
from typing import Any

from studio.telemetry.device_map import map_cuda_to_gpu
from studio.telemetry.history import DEFAULT_HISTORY_LENGTH, TelemetryHistory
from studio.telemetry.host import HostReader
from studio.telemetry.nvml import NvmlReader
from studio.telemetry.paged import ResidencyEstimator, read_paged_totals
from studio.telemetry.snapshots import (
    GpuSnapshot,
    PagedMemory,
    TelemetrySnapshot,
)
from studio.telemetry.torch_memory import cuda_device_uuids, read_torch_memory

MIN_INTERVAL_SECONDS = 0.2  # NVML itself refreshes most counters no faster than this


class TelemetrySampler:
    """Polls telemetry every `interval_seconds` (at least 0.2 s) once `start()` is called."""

    def __init__(
        self,
        interval_seconds: float = 1.0,
        on_snapshot: Callable[[TelemetrySnapshot], None] | None = None,
        nvml_module: ModuleType | Any | None = None,
        history_length: int = DEFAULT_HISTORY_LENGTH,
        query_pcie: bool = True,
    ) -> None:
        self.interval_seconds = max(float(interval_seconds), MIN_INTERVAL_SECONDS)
        self.on_snapshot = on_snapshot
        self.history = TelemetryHistory(history_length)
        self.last_error: BaseException | None = None
        self._host = HostReader()
        self._nvml = NvmlReader(nvml_module, query_pcie=query_pcie)
        self._residency = ResidencyEstimator()
        self._cuda_uuids: list[str | None] | None = None
        self._latest: TelemetrySnapshot | None = None
        self._sample_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def latest(self) -> TelemetrySnapshot | None:
        """The most recent snapshot, or None before the first poll."""
        return self._latest

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def sample_once(self) -> TelemetrySnapshot:
        """Take one snapshot now (on the caller's thread), record it and return it.

        Does not call `on_snapshot`; that is for the polling thread.
        """
        with self._sample_lock:
            snapshot = self._sample()
            self._latest = snapshot
            self.history.record(snapshot)
            return snapshot

    def start(self) -> None:
        """Start polling on a daemon thread; calling it again while running does nothing."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="ftstudio-telemetry", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop polling and wait for the thread (a poll in flight finishes first)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None

    def close(self) -> None:
        """Stop polling and release NVML."""
        self.stop()
        self._nvml.close()

    def __enter__(self) -> TelemetrySampler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                snapshot = self.sample_once()
                if self.on_snapshot is not None:
                    self.on_snapshot(snapshot)
            except Exception as error:  # keep polling; the owner can read it
                self.last_error = error
            # Sleep the rest of the interval, so a slow poll does not raise the rate.
            elapsed = time.monotonic() - started
            self._stop.wait(max(self.interval_seconds - elapsed, MIN_INTERVAL_SECONDS / 4))

    def _sample(self) -> TelemetrySnapshot:
        now = time.time()
        host = self._host.read()
        reading = self._nvml.read()
        torch_memory = read_torch_memory()
        paged_totals = read_paged_totals()
        cuda_count = max(
            [len(torch_memory)] + [item.cuda_index + 1 for item in paged_totals],
        )
        mapping: dict[int, int | None] = {}
        if cuda_count:
            if self._cuda_uuids is None or len(self._cuda_uuids) < cuda_count:
                self._cuda_uuids = cuda_device_uuids()  # static: read once CUDA is up
            mapping = map_cuda_to_gpu(cuda_count, reading.gpus, self._cuda_uuids)
        gpus_by_index = {gpu.index: gpu for gpu in reading.gpus}
        torch_entries = tuple(
            replace(item, gpu_index=mapping.get(item.cuda_index)) for item in torch_memory
        )
        paged_entries = tuple(
            self._paged_entry(
                item.cuda_index, item.paged_bytes, item.tensor_count, mapping, gpus_by_index
            )
            for item in paged_totals
        )
        # GPUs that hold no paged state still update their baseline for later.
        paged_gpus = {entry.gpu_index for entry in paged_entries}
        for gpu in reading.gpus:
            if gpu.index not in paged_gpus:
                self._residency.update(gpu.index, 0, gpu.memory_used_bytes, _process_memory(gpu))
        return TelemetrySnapshot(
            time=now,
            host=host,
            gpus=reading.gpus,
            gpu_unavailable_reason=reading.unavailable_reason,
            torch_memory=torch_entries,
            paged=paged_entries,
        )

    def _paged_entry(
        self,
        cuda_index: int,
        paged_bytes: int,
        tensor_count: int,
        mapping: dict[int, int | None],
        gpus_by_index: dict[int, GpuSnapshot],
    ) -> PagedMemory:
        gpu_index = mapping.get(cuda_index)
        gpu = gpus_by_index.get(gpu_index) if gpu_index is not None else None
        resident = spilled = None
        if gpu is not None:
            resident, spilled = self._residency.update(
                gpu.index, paged_bytes, gpu.memory_used_bytes, _process_memory(gpu)
            )
        return PagedMemory(
            cuda_index=cuda_index,
            gpu_index=gpu_index,
            paged_bytes=paged_bytes,
            tensor_count=tensor_count,
            resident_bytes=resident,
            spilled_bytes=spilled,
        )


def _process_memory(gpu: GpuSnapshot) -> list[int | None] | None:
    if gpu.processes is None:
        return None
    return [process.used_memory_bytes for process in gpu.processes]
