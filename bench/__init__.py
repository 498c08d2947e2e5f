"""Speed and memory benchmarks of ftstudio's fast path against plain transformers / peft / trl.

`python -m bench --help`; see bench/README.md. Not part of the installed package.
"""
