"""Training data: reading files, detecting formats, validating, cleaning and splitting.

Nothing here imports torch; pyarrow / datasets are imported only for Parquet and hub datasets.
"""

from studio.data.check import check_main
from studio.data.loading import LoadedData, load_training_data, read_dataset_file
from studio.data.report import DataReport, RecordProblem

__all__ = [
    "DataReport",
    "LoadedData",
    "RecordProblem",
    "check_main",
    "load_training_data",
    "read_dataset_file",
]
