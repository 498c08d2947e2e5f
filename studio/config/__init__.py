"""The run config: everything about a fine-tuning run, as one validated pydantic model.

- `schema`: the run config and its sections (model, data, training, ...);
- `methods`: the settings of each fine-tuning method, selected by `method.name`;
- `fields`: introspection for the TUI form and `ftstudio config --explain`;
- `overrides`: `--set key=value` and the TUI's changes, one implementation for all;
- `messages`: validation errors as file, line, field, value and what is allowed;
- `files`: YAML in and out, and the one reader of every YAML file.

The names importers use are importable from `studio.config` itself. Pure data: no torch.
"""

from studio.config.fields import FieldSpec, all_fields, explain, field_bounds, section_fields
from studio.config.files import (
    NOT_UTF8,
    YamlFile,
    dump_config,
    load_config,
    read_yaml_file,
    save_config,
)
from studio.config.messages import format_validation_error
from studio.config.methods import (
    DEFAULT_METHOD,
    METHOD_NAMES,
    METHOD_SETTINGS,
    METHOD_TRAINING_TYPES,
    BottleneckSettings,
    FreezeSettings,
    FullSettings,
    IA3Settings,
    LoraSettings,
    MethodName,
    MethodSettings,
    PrefixTuningSettings,
    PromptTuningSettings,
    PTuningSettings,
    QLoraSettings,
    method_defaults,
)
from studio.config.overrides import (
    apply_changes,
    config_from_dict,
    config_with_changes,
    flatten,
    parse_override,
    parse_overrides,
)
from studio.config.schema import (
    DataFormat,
    DataSettings,
    DeviceSettings,
    MixedDataset,
    ModelSettings,
    OutputSettings,
    PreferenceSettings,
    RunConfig,
    TrainingSettings,
    TrainingType,
    config_to_dict,
)

__all__ = [
    "DEFAULT_METHOD",
    "METHOD_NAMES",
    "METHOD_SETTINGS",
    "METHOD_TRAINING_TYPES",
    "NOT_UTF8",
    "BottleneckSettings",
    "DataFormat",
    "DataSettings",
    "DeviceSettings",
    "FieldSpec",
    "FreezeSettings",
    "FullSettings",
    "IA3Settings",
    "LoraSettings",
    "MethodName",
    "MethodSettings",
    "MixedDataset",
    "ModelSettings",
    "OutputSettings",
    "PTuningSettings",
    "PreferenceSettings",
    "PrefixTuningSettings",
    "PromptTuningSettings",
    "QLoraSettings",
    "RunConfig",
    "TrainingSettings",
    "TrainingType",
    "YamlFile",
    "all_fields",
    "apply_changes",
    "config_from_dict",
    "config_to_dict",
    "config_with_changes",
    "dump_config",
    "explain",
    "field_bounds",
    "flatten",
    "format_validation_error",
    "load_config",
    "method_defaults",
    "parse_override",
    "parse_overrides",
    "read_yaml_file",
    "save_config",
    "section_fields",
]
