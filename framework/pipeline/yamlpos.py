"""Load YAML into plain data while remembering where every key and value stands.

Bounded: a pipeline is a small file. Text over MAX_BYTES, more than MAX_VALUES values once
aliases are expanded (a "billion laughs" file expands nine levels of aliases into 10^9
values) and an alias that contains itself are errors with a line, not a hang or a crash.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .errors import Issue, PipelineError, format_path

Position = tuple[int, int]  # 1-based line and column
MAX_BYTES = 1_000_000
MAX_VALUES = 20_000


class Located:
    """Plain data plus the positions of its values and keys, by key path."""

    def __init__(self, data: Any, values: dict[tuple, Position], keys: dict[tuple, Position]):
        self.data = data
        self.values = values
        self.keys = keys

    def where(self, path: tuple, key: bool = False) -> Position | None:
        """Position of the value at ``path`` (or of its key), else of the nearest parent."""
        table = self.keys if key else self.values
        while path:
            if path in table:
                return table[path]
            if path in self.values:
                return self.values[path]
            path = path[:-1]
        return self.values.get((), None)


def check_size(size: int, filename: str) -> None:
    """A pipeline over MAX_BYTES is refused before it is decoded or parsed."""
    if size > MAX_BYTES:
        raise PipelineError([Issue(filename, None, None, "", f"the file is {size:,} bytes; a pipeline may have "
                                                              f"{MAX_BYTES:,} at most")])


def load_located(text: str, filename: str) -> Located:
    """Parse ``text``; syntax errors, duplicate keys and the limits above raise PipelineError
    with a line."""
    check_size(len(text.encode("utf-8", "surrogatepass")), filename)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        message = f"invalid YAML: {err.problem or err.context}"
        raise PipelineError([Issue(filename, mark.line + 1, mark.column + 1, "", message)]) from None
    values: dict[tuple, Position] = {}
    keys: dict[tuple, Position] = {}
    issues: list[Issue] = []
    constructor = SafeConstructor()

    def mark(n) -> Position:
        return (n.start_mark.line + 1, n.start_mark.column + 1)

    counted = [0]
    open_nodes: set[int] = set()

    def build(n, path: tuple) -> Any:
        counted[0] += 1
        if counted[0] > MAX_VALUES:
            raise PipelineError([Issue(filename, *mark(n), format_path(path),
                                       f"more than {MAX_VALUES:,} values (aliases expand to too many)")])
        if id(n) in open_nodes:
            raise PipelineError([Issue(filename, *mark(n), format_path(path), "an alias that contains itself")])
        if isinstance(n, (yaml.MappingNode, yaml.SequenceNode)):
            open_nodes.add(id(n))
            try:
                return build_collection(n, path)
            finally:
                open_nodes.discard(id(n))
        values[path] = mark(n)
        return constructor.construct_object(n, deep=True)

    def build_collection(n, path: tuple) -> Any:
        values[path] = mark(n)
        if isinstance(n, yaml.MappingNode):
            result = {}
            for key_node, value_node in n.value:
                key = constructor.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    issues.append(Issue(filename, *mark(key_node), format_path(path), "keys must be plain names"))
                    continue
                key = str(key) if not isinstance(key, str) else key
                if key in result:
                    issues.append(Issue(filename, *mark(key_node), format_path(path + (key,)), f"duplicate key {key!r}"))
                    continue
                keys[path + (key,)] = mark(key_node)
                result[key] = build(value_node, path + (key,))
            return result
        return [build(item, path + (i,)) for i, item in enumerate(n.value)]

    data = build(node, ()) if node is not None else None
    if issues:
        raise PipelineError(issues)
    return Located(data, values, keys)
