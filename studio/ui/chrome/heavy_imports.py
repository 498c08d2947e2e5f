"""Import torch and transformers on a worker thread, once, before any worker uses them.

The studio's first screen never imports them (start-up stays under a second). Workers that
need them (model inspection, dataset preview, training, chat) may start at the same moment,
and transformers' lazily-built module is not safe to import from two threads at once (one
thread can see it half-initialised: "cannot import name 'AutoConfig'"). Every such worker
calls `ensure_ml_imports()` first; the lock makes the first caller do the import and the
others wait for it.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_done = False


def ensure_ml_imports() -> None:
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        import torch  # noqa: F401
        import transformers  # noqa: F401
        from transformers import (  # noqa: F401
            AutoConfig,
            AutoModelForCausalLM,
            AutoTokenizer,
        )

        _done = True
