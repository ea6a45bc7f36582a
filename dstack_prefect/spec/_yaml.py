"""YAML text to plain Python data, keeping where every key and value starts.

PyYAML's composer keeps a ``start_mark`` on each node (libyaml's when available, which is fast);
`yaml.safe_load` throws them away. `parse` builds the same data `safe_load` would, plus two maps
from a key path such as ``("workflows", 2, "resources", "gpu")`` to a 1-based ``(line, col)``:
one for values and one for mapping keys. It also checks every string for `${{ ... }}` problems
while the node (and so the exact column) is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dstack_prefect.spec import _interp

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"

Path = tuple[str | int, ...]
Pos = tuple[int, int]


@dataclass
class Problem:
    """A located problem found while reading YAML, before any model sees the data."""

    path: Path
    pos: Pos
    message: str


@dataclass
class Parsed:
    """The data of one YAML document and where each piece of it starts."""

    data: Any
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def locate(self, path: Path, *, key: bool = False) -> Pos:
        """The position of ``path`` (its key when ``key``), or of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            pos = self.values.get(path[:end])
            if pos is not None:
                return pos
        return (1, 1)


class YAMLSyntaxProblem(Exception):
    """The text is not valid YAML; ``pos`` is where the parser stopped."""

    def __init__(self, message: str, pos: Pos) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def _syntax_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    mark = exc.problem_mark
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        return "invalid YAML: a tab character, expected spaces for indentation"
    if exc.context and "single document" in exc.context:
        return "invalid YAML: a second document ('---'), expected a single document"
    return f"invalid YAML: {exc.problem or exc}"


def parse(text: str) -> Parsed:
    """Parse one YAML document.

    Raises:
        YAMLSyntaxProblem: the text is not YAML (or holds several documents).
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YAMLSyntaxProblem(_syntax_message(exc, text), pos) from None
    except yaml.YAMLError as exc:  # e.g. a reader error on a control character
        msg = f"invalid YAML: {exc}"
        raise YAMLSyntaxProblem(msg, (1, 1)) from None
    parsed = Parsed(data=None)
    if node is not None:
        parsed.data = _Builder(parsed).build(node, ())
    return parsed


def _pos(node: Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, parsed: Parsed) -> None:
        self.parsed = parsed
        self.constructor = SafeConstructor()

    def build(self, node: Node, path: Path) -> Any:
        self.parsed.values[path] = _pos(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        return None  # pragma: no cover - the composer makes no other node kind

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag == _STR:
            value: Any = node.value
            if "$" in value:
                self._check_interpolation(node, path)
            return value
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            msg = f"cannot read this value: {getattr(exc, 'problem', exc)}"
            self.parsed.problems.append(Problem(path, _pos(node), msg))
            return None

    def _check_interpolation(self, node: ScalarNode, path: Path) -> None:
        line, col = _pos(node)
        quotes = {None: 0, "": 0, "'": 2, '"': 2}.get(node.style)
        as_written = (
            quotes is not None and node.end_mark.index - node.start_mark.index == len(node.value) + quotes
        )
        shift = quotes // 2 if as_written and quotes is not None else None
        for problem in _interp.check(node.value):
            where = (line, col + problem.offset + shift) if shift is not None else (line, col)
            self.parsed.problems.append(Problem(path, where, problem.message))

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, Pos] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self._merge(out, value_node, path)
                continue
            if not isinstance(key_node, ScalarNode):
                msg = "a key that is a list or mapping, expected a plain name"
                self.parsed.problems.append(Problem(path, _pos(key_node), msg))
                continue
            key = key_node.value
            if key in first:
                msg = f"duplicate key '{key}', first at line {first[key][0]}"
                self.parsed.problems.append(Problem((*path, key), _pos(key_node), msg))
            first[key] = _pos(key_node)
            self.parsed.keys[(*path, key)] = _pos(key_node)
            out[key] = self.build(value_node, (*path, key))
        return out

    def _merge(self, out: dict[str, Any], node: Node, path: Path) -> None:
        here = self.parsed.values[path]
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            value = self.build(source, path)
            if isinstance(value, dict):
                for k, v in value.items():
                    out.setdefault(k, v)
        self.parsed.values[path] = here
