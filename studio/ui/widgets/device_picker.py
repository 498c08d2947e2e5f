"""Pick the GPUs a run trains on, seeing what each holds and who else is on it.

One line per GPU (free memory, utilisation, the users and commands of the processes already on
it), checkboxes to choose them, and under the list what `auto` would pick and why, from the
same pure decision the engine logs (`studio.engine.devices.choose_devices`). Ticking GPUs sets
the run config's `devices.gpus`; none ticked means `auto`. Several GPUs train as a torchrun
group. On a machine without a GPU the picker stays hidden: there is nothing to choose.

The machine is read on a worker (NVML, the memory estimate) when the picker mounts and on
`r`efresh; `StudioServices.nvml_module` scripts it in tests (`telemetry.fake_nvml`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, SelectionList, Static
from textual.widgets.selection_list import Selection

if TYPE_CHECKING:
    from studio.config import RunConfig
    from studio.engine.devices import DeviceChoice
    from studio.telemetry.snapshots import TelemetrySnapshot
    from studio.ui.app import StudioApp


class DevicePicker(Vertical):
    """The machine's GPUs, the ones chosen for the run, and what `auto` would choose."""

    DEFAULT_CSS = """
    DevicePicker { height: auto; display: none; }
    DevicePicker.-has-gpus { display: block; }
    DevicePicker SelectionList { height: auto; max-height: 10; }
    DevicePicker #device-auto { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh_devices", "Refresh GPUs")]

    class Sampled(Message):
        """The machine was read on a worker."""

        def __init__(self, snapshot: TelemetrySnapshot, estimate_bytes: int | None) -> None:
            super().__init__()
            self.snapshot = snapshot
            self.estimate_bytes = estimate_bytes

    class Chosen(Message):
        """The user changed the GPUs; `gpus` is the config's devices.gpus ("auto", "0,2")."""

        def __init__(self, gpus: str) -> None:
            super().__init__()
            self.gpus = gpus

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.snapshot: TelemetrySnapshot | None = None
        """The last reading of the machine."""
        self.auto_choice: DeviceChoice | None = None
        """What `auto` picks on that reading for the current config."""
        self._estimate: int | None = None
        self._showing = False  # while the list is rebuilt, its events are not the user's

    @property
    def studio_app(self) -> StudioApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Label("GPUs for the run (none ticked: auto)", classes="pane-title")
        yield SelectionList[int](id="gpu-list", compact=True)
        yield Static("", id="device-auto")

    @property
    def gpu_list(self) -> SelectionList[int]:
        return self.query_one("#gpu-list", SelectionList)

    def on_mount(self) -> None:
        self.studio_app.config_changed.subscribe(self, lambda _config: self._show())
        self.action_refresh_devices()

    def action_refresh_devices(self) -> None:
        self._sample(
            self.studio_app.studio.config, getattr(self.studio_app.services, "nvml_module", None)
        )

    @work(thread=True, exclusive=True, group="device-picker", exit_on_error=False)
    def _sample(self, config: RunConfig, nvml_module: Any) -> None:
        from studio.engine.devices import estimate_for
        from studio.telemetry import TelemetrySampler

        sampler = TelemetrySampler(nvml_module=nvml_module)
        try:
            snapshot = sampler.sample_once()
        finally:
            sampler.close()
        estimate = estimate_for(config) if snapshot.gpus else None
        self.post_message(self.Sampled(snapshot, estimate))

    @on(Sampled)
    def _sampled(self, message: Sampled) -> None:
        self.snapshot, self._estimate = message.snapshot, message.estimate_bytes
        self._show()

    def _show(self) -> None:
        import os

        from studio.engine.devices import choose_devices, describe_gpu
        from studio.errors import ConfigError

        snapshot = self.snapshot
        self.set_class(bool(snapshot and snapshot.gpus), "-has-gpus")
        if snapshot is None or not snapshot.gpus:
            return
        config = self.studio_app.studio.config
        own = frozenset({os.getpid()})
        chosen = set(config.devices.indices or ())
        self._showing = True
        try:
            gpu_list = self.gpu_list
            gpu_list.clear_options()
            gpu_list.add_options(
                [
                    Selection(describe_gpu(gpu, own), gpu.index, gpu.index in chosen)
                    for gpu in snapshot.gpus
                ]
            )
        finally:
            self._showing = False
        auto_settings = config.devices.model_copy(update={"gpus": "auto"})
        try:
            self.auto_choice = choose_devices(
                auto_settings,
                snapshot,
                method=config.method.name,
                estimate_bytes=self._estimate,
                own_pids=own,
            )
            text = f"auto → {self.auto_choice.reason}"
            if self.auto_choice.warnings:
                text += "\n" + "\n".join(self.auto_choice.warnings)
        except ConfigError as error:
            text = error.message
        self.query_one("#device-auto", Static).update(text)

    @on(SelectionList.SelectedChanged, "#gpu-list")
    def _selection_changed(self, event: SelectionList.SelectedChanged) -> None:
        if self._showing:
            return
        selected = sorted(self.gpu_list.selected)
        gpus = ",".join(str(index) for index in selected) or "auto"
        self.post_message(self.Chosen(gpus))
        app = self.studio_app
        if app.studio.config.devices.gpus != gpus:
            from studio.config import config_with_changes

            app.set_config(
                config_with_changes(app.studio.config, {"devices.gpus": gpus}),
                app.studio.config_problem,
            )
