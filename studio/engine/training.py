"""The body of a training session: data check, model, method, trainer, train, save.

Imported only when a run starts (it imports torch and transformers). What differs between
training types — how records become batches and which trainer runs them — lives in one
module per type, each with `build_trainer(job) -> transformers.Trainer`.
"""

from __future__ import annotations

import importlib
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.engine.callbacks import EngineCallback, attach_run_callbacks
from studio.engine.run_dir import replace_directory
from studio.formatting import MIB

if TYPE_CHECKING:
    from collections.abc import Callable

    from transformers import PreTrainedTokenizerBase

    from studio.config import RunConfig
    from studio.data import LoadedData
    from studio.engine.data_preparation import EarlyPreparation
    from studio.engine.fast_path import FastPath
    from studio.engine.session import TrainingSession
    from studio.models.loading import DevicePlan

TRAINER_MODULES = {
    "sft": "studio.engine.sft",
    "pretrain": "studio.engine.sft",
    "dpo": "studio.engine.preference",
    "orpo": "studio.engine.preference",
    "kto": "studio.engine.kto",
}


@dataclass
class TrainingJob:
    """Everything a trainer builder needs, prepared by `train`."""

    session: TrainingSession
    data: LoadedData
    model: Any
    tokenizer: PreTrainedTokenizerBase
    plan: DevicePlan
    callback_factory: Callable[[Callable[[], int]], EngineCallback]
    fast_path: FastPath | None = None
    # The examples being prepared since the tokenizer loaded (studio.engine.data_preparation).
    early_preparation: EarlyPreparation | None = None

    @property
    def config(self) -> RunConfig:
        return self.session.config


def trainer_module(training_type: str) -> Any:
    from studio.errors import ConfigError

    name = TRAINER_MODULES.get(training_type)
    if name is None:
        raise ConfigError(
            f"training_type '{training_type}' is not available in this build",
            advice=f"use one of: {', '.join(TRAINER_MODULES)}",
        )
    return importlib.import_module(name)


def train(session: TrainingSession) -> EngineCallback:
    config = session.config
    run = session.run_dir
    assert run is not None

    # 1. The data is checked before any model is loaded: a bad file fails in seconds.
    # With an encoded copy in the cache, only its report (studio.engine.data_preparation).
    from studio.engine.data_preparation import (
        encodes_early,
        load_run_data,
        start_early_preparation,
    )
    from studio.engine.vocabulary import plan_vocabulary

    builder = trainer_module(config.training_type)
    vocabulary = plan_vocabulary(config, session.base_dir)  # new tokens: read before loading
    from studio.models.loading import load_tokenizer, quiet_libraries
    from studio.models.sources import resolve_model_source

    quiet_libraries()
    source = resolve_model_source(config.model.source)
    # The tokenizer (seconds, not the model) before the data when ftstudio encodes it: a
    # large file's records are then encoded by worker processes while it is still read.
    tokenizer = None
    if encodes_early(session, adds_tokens=bool(vocabulary.tokens)):
        tokenizer = load_tokenizer(config.model, source, on_note=session.log)
    data = load_run_data(session, tokenizer)
    run.write_json("data_report.json", data.report.to_dict())
    session.log(data.report.summary())

    from studio.engine.fast_path import (
        choose_attention,
        choose_checkpointing,
        decide_fast_path,
        inspect_model,
        probe_machine,
    )
    from studio.methods.registry import MethodContext, describe_trainable, get_method, save_trained
    from studio.models.loading import load_base_model, plan_device

    # 2. Model and method, with the speed switches that must be known before loading.
    plan = plan_device(config.model, config.training.precision)
    machine = probe_machine()
    checkpointing, _ = choose_checkpointing(config.training, machine)
    from studio.models.attention import supported_attention

    attention = choose_attention(
        config.model.attn_implementation,
        plan,
        machine,
        supported_attention(source.location, config.model),
    )
    if source.is_local:
        from studio.engine.memory_check import warn_if_it_will_not_fit

        warn_if_it_will_not_fit(config, source.location, plan.device, session.log)
    session.log(f"loading {source.name} ({source.kind}) on {plan.device} as {plan.dtype_name}")
    if tokenizer is None:
        tokenizer = load_tokenizer(config.model, source, on_note=session.log)
    # Refused here, before the model loads (minutes on a large one), not after.
    from studio.engine.encoding import require_chat_template

    require_chat_template(tokenizer, data.kind)
    # The data is encoded while the model loads; the run cancels it if it fails first.
    session.early_preparation = start_early_preparation(
        session, data, tokenizer, adds_tokens=bool(vocabulary.tokens)
    )
    method = get_method(config.method.name)
    implementation = method.implementation()
    quantization = None
    if hasattr(implementation, "quantization_config"):
        quantization = implementation.quantization_config(config.method, plan)
    model = load_base_model(
        config.model,
        plan,
        quantization_config=quantization,
        source=source,
        attn_implementation=attention.value,
    )
    vocabulary.extend(tokenizer, model, session.log)
    context = MethodContext(
        tokenizer=tokenizer,
        plan=plan,
        training_type=config.training_type,
        gradient_checkpointing=checkpointing.enabled,
        training=config.training,
        log=session.log,
    )
    model = implementation.apply(model, config.method, context)
    vocabulary.train_new_tokens(model, session.log)
    session.model, session.tokenizer = model, tokenizer
    session.log(f"method {method.title}: {describe_trainable(model)}")
    fast_path = decide_fast_path(config, plan, machine, inspect_model(model), attention)
    for level, line in fast_path.log_lines():
        session.log(line, level)

    # 3. The trainer for this training type.
    callbacks: list[EngineCallback] = []
    group_control = None
    engine_control = session.control
    if session.rank is not None:
        from studio.engine.distributed import group_control_callback

        # In a torchrun group the engine obeys what the ranks agreed on at each step end.
        group_control = group_control_callback(session)
        engine_control = group_control.agreed

    def callback_factory(tokens_seen: Callable[[], int]) -> EngineCallback:
        callback = EngineCallback(session.publish, engine_control, tokens_seen)
        callbacks.append(callback)
        return callback

    job = TrainingJob(
        session,
        data,
        model,
        tokenizer,
        plan,
        callback_factory,
        fast_path,
        early_preparation=session.early_preparation,
    )
    from studio.engine.patch_isolation import isolated_model_code

    # Liger patches the model classes of the whole process: undone when training ends.
    with isolated_model_code():
        trainer = builder.build_trainer(job)
        from transformers import PrinterCallback

        from studio.methods.restore import restore_on_resume

        # Our own events replace the Trainer's printed log dicts.
        trainer.remove_callback(PrinterCallback)
        if group_control is not None:
            # First, so every rank agrees on stop / save before the engine's callback reads them.
            trainer.callback_handler.callbacks.insert(0, group_control)
        else:
            from studio.engine.devices import keep_to_one_device

            keep_to_one_device(trainer, session.log)
        attach_run_callbacks(trainer, session)  # checkpoint markers and pruning, resume details
        restore_on_resume(trainer, config.method)  # every trained tensor, or a loud failure
        try:
            trainer.train(resume_from_checkpoint=session.resume_from)
        finally:
            _release_paged_state(trainer, session)

    # 4. Save the result atomically: a crash mid-save leaves no half-written adapter behind.
    staging = run.path / ".adapter.saving"
    if session.rank is not None:
        from studio.engine.distributed import save_group_result

        save_group_result(session, trainer, model, staging)
    else:
        shutil.rmtree(staging, ignore_errors=True)
        save_trained(model, config.method, staging)
    if session.records_run:
        from studio.engine.checkpoints import mark_complete

        tokenizer.save_pretrained(str(staging))
        run.apply_modes(staging)
        mark_complete(staging, session.current_step or None, run.file_mode)  # chat/export verify it
        replace_directory(staging, run.adapter_dir)
        session.log(f"saved {method.title} result to {run.adapter_dir}")
    return callbacks[0]


def _release_paged_state(trainer: Any, session: TrainingSession) -> None:
    """bitsandbytes keeps paged optimizer state registered (and allocated) for the life of the
    process: a later run would be added to this one in the memory panel."""
    from studio.telemetry.paged import release_paged_state

    registered, freed = release_paged_state(getattr(trainer, "optimizer", None))
    if registered:
        session.log(
            f"paged optimizer state released: {registered / MIB:.1f} MiB registered, "
            f"{freed / MIB:.1f} MiB freed"
        )
