"""The stages of `ftstudio data prepare`: detect, decode, extract, clean, filter, deduplicate.

Each module holds one stage; `studio.data.prepare` runs them in order and writes the report.
"""
