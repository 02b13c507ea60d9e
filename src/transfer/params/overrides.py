"""Params changed as `dvc exp run -S key=value` changes them: dotted keys, merged into the
mappings they name (the study, the tests and the benchmark all change params this way)."""

from __future__ import annotations


def nested(overrides: dict) -> dict:
    """`{"a.b": 1}` as `{"a": {"b": 1}}`."""
    tree: dict = {}
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def merged(base: dict, changes: dict) -> dict:
    """`base` with the nested `changes` applied (mappings merged, values replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = (merged(base[key], value) if isinstance(value, dict)
                    and isinstance(base.get(key), dict) else value)
    return out
