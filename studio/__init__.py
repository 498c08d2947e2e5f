"""ftstudio: a terminal fine-tuning studio for large language models."""

import logging

__version__ = "0.1.0"

# bitsandbytes warns on every import on CPUs with AVX512-BF16 that an optional CPU kernel
# package ("kernels") is missing; it changes nothing for users (4-bit still works, and GPU
# runs never use that kernel) and only buries the lines that matter. Other warnings stay.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
