"""Load YAML into plain data while remembering where every key and value stands."""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from .errors import Issue, PipelineError, format_path

Position = tuple[int, int]  # 1-based line and column


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


def load_located(text: str, filename: str) -> Located:
    """Parse ``text``; syntax errors and duplicate keys raise PipelineError with a line."""
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

    def build(n, path: tuple) -> Any:
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
        if isinstance(n, yaml.SequenceNode):
            return [build(item, path + (i,)) for i, item in enumerate(n.value)]
        return constructor.construct_object(n, deep=True)

    data = build(node, ()) if node is not None else None
    if issues:
        raise PipelineError(issues)
    return Located(data, values, keys)
