"""YAML text to plain Python data, keeping where every key and value starts.

PyYAML's composer keeps a ``start_mark`` on each node (libyaml's when available, which is fast);
`yaml.safe_load` throws them away. `parse` builds the same data `safe_load` would, plus two maps
from a key path such as ``("workflows", 2, "resources", "gpu")`` to a 1-based ``(line, col)``:
one for values and one for mapping keys. It also checks every string for `${{ ... }}` problems
while the node (and so the exact line and column, in any scalar style) is at hand.

What would crash or hang a naive builder is a located syntax problem instead: an alias inside its
own anchor's value, nesting deeper than `MAX_DEPTH` (libyaml's composer itself crashes on tens of
thousands of levels, so very bracket-heavy text is measured first), and aliases that expand to
more than `MAX_ALIAS_EXPANSIONS` nodes ("billion laughs").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dstack_prefect.spec import _interp
from dstack_prefect.spec._fields import did_you_mean, show

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_BOOL = "tag:yaml.org,2002:bool"
_COMMAND_KEYS = ("commands", "setup", "before_run")  # a string there is split into lines

MAX_DEPTH = 100
"""Collections nested deeper than this are refused (the file's root mapping is level 1)."""
MAX_ALIAS_EXPANSIONS = 100_000
"""Nodes built again through aliases (and merge keys) before the file is refused."""
_NESTING_MARKS = 10_000  # more '[', '{' and '- ' than this and the depth is measured before composing

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


def _reader_problem(exc: yaml.reader.ReaderError, text: str) -> YAMLSyntaxProblem:
    """A located problem for a character YAML refuses (libyaml counts ``position`` in UTF-8 bytes,
    PyYAML's own reader in characters)."""
    char = exc.character
    code = ord(char) if isinstance(char, str) else int(char)
    if _Loader is yaml.SafeLoader:  # pragma: no cover - PyYAML built without libyaml
        before = text[: exc.position]
    else:
        before = text.encode("utf-8")[: exc.position].decode("utf-8", errors="ignore")
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    msg = f"invalid YAML: control character #x{code:04x} is not allowed, expected printable text"
    return YAMLSyntaxProblem(msg, (line, col))


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than MAX_DEPTH before libyaml's recursive composer sees it."""
    marks = text.count("[") + text.count("{") + text.count("- ")
    if marks <= _NESTING_MARKS:
        return
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep(event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _too_deep(mark: yaml.Mark) -> YAMLSyntaxProblem:
    msg = f"invalid YAML: nested more than {MAX_DEPTH} levels deep, expected a flatter file"
    return YAMLSyntaxProblem(msg, (mark.line + 1, mark.column + 1))


def _syntax_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    mark = exc.problem_mark
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        return "invalid YAML: a tab character, expected spaces for indentation"
    if exc.context and "single document" in exc.context:
        return "invalid YAML: a second document ('---'), expected a single document"
    if mark is not None and "undefined alias" in f"{exc.problem} {exc.context}":
        return _undefined_alias(text, mark.index)
    return f"invalid YAML: {exc.problem or exc}"


def _undefined_alias(text: str, index: int) -> str:
    """``*name`` with no ``&name`` before it: which, and the anchors there are."""
    name = re.match(r"\*([^\s,\[\]{}]+)", text[index:])
    alias = name.group(1) if name else "?"
    anchors = list(dict.fromkeys(re.findall(r"&([^\s,\[\]{}]+)", text[:index])))
    message = f"invalid YAML: alias '*{alias}' names no anchor, expected an '&{alias}' defined above it"
    suggestion = did_you_mean(alias, anchors)
    if suggestion:
        return message + suggestion
    return message + (f" (anchors above: {', '.join('&' + a for a in anchors)})" if anchors else "")


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str) -> YAMLSyntaxProblem:
    """A syntax error placed where the mistake is (an unclosed quote's start, a key missing its
    ':'), with what the parser was inside of (a list, a mapping, a '[') and how to fix it."""
    mark, context = exc.problem_mark or exc.context_mark, exc.context_mark
    pos = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    message = _syntax_message(exc, text)
    where = f"line {context.line + 1}" if context else ""
    if mark is not None and mark.index > 0 and text.startswith("${{", mark.index - 1):
        # `[echo ${{ run.args }}]`: the `{{` opens flow mappings; point at the `$`
        pos = (pos[0], pos[1] - 1)
        message += "; in [...] or {...} quote a string with '${{', e.g. [\"echo ${{ run.args }}\"]"
    elif context is None or message != f"invalid YAML: {exc.problem}":
        pass
    elif exc.context == "while scanning a quoted scalar":
        quote = text[context.index : context.index + 1]
        message = (
            "invalid YAML: a quoted string that is never closed,"
            f" expected a closing {quote} before the end of the file"
        )
        pos = (context.line + 1, context.column + 1)
    elif exc.context == "while scanning a simple key":
        written = text[context.index :].split("\n", 1)[0].strip()
        key, _, value = written.partition(" ")
        message = f"invalid YAML: a key with no ':' after it, expected '{key}: {value.strip() or 'VALUE'}'"
        pos = (context.line + 1, context.column + 1)
    elif exc.context == "while parsing a block collection":
        message += (
            f"; expected '- ' at column {context.column + 1} (the list that starts at {where}),"
            " or this line indented under the item above"
        )
    elif exc.context == "while parsing a block mapping":
        message += (
            f"; expected a key at column {context.column + 1} (the mapping that starts at {where}),"
            " check this line's indentation"
        )
    elif exc.context in ("while parsing a flow sequence", "while parsing a flow mapping"):
        opener = text[context.index : context.index + 1]
        message += f" (for the '{opener}' at {where}, column {context.column + 1})"
    return YAMLSyntaxProblem(message, pos)


def parse(text: str) -> Parsed:
    """Parse one YAML document.

    Raises:
        YAMLSyntaxProblem: the text is not YAML (or holds several documents).
    """
    try:
        _check_depth(text)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.reader.ReaderError as exc:  # a control character
        raise _reader_problem(exc, text) from None
    except yaml.MarkedYAMLError as exc:
        raise _syntax_problem(exc, text) from None
    except yaml.YAMLError as exc:  # pragma: no cover - libyaml raises the kinds above
        msg = f"invalid YAML: {exc}"
        raise YAMLSyntaxProblem(msg, (1, 1)) from None
    parsed = Parsed(data=None)
    if node is not None:
        parsed.data = _Builder(parsed, text).build(node, ())
    return parsed


def _kept_as_written(node: ScalarNode, path: Path) -> bool:
    """Where a number or a YAML 1.1 boolean is text to keep as written: an `env` mapping's
    values (`DEBUG: on` is "on", not "true"), and `version` (numbers)."""
    env_value = len(path) == 4 and path[::2] == ("workflows", "env") and isinstance(path[3], str)
    if node.tag == _BOOL:
        return env_value
    version = len(path) == 3 and path[0] == "workflows" and path[2] == "version"
    return node.tag in _NUMBER_TAGS and (env_value or version)


def _pos(node: Node) -> Pos:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, parsed: Parsed, text: str) -> None:
        self.parsed = parsed
        self.text = text
        self.constructor = SafeConstructor()
        self.open: set[int] = set()  # the collections being built, by id: an alias of one is a loop
        self.built: set[int] = set()
        self.expansions = 0

    def build(self, node: Node, path: Path) -> Any:
        if id(node) in self.built:
            self.expansions += 1
            if self.expansions > MAX_ALIAS_EXPANSIONS:
                msg = (
                    f"invalid YAML: aliases expand to more than {MAX_ALIAS_EXPANSIONS} values, expected fewer"
                )
                raise YAMLSyntaxProblem(msg, self.parsed.locate(path, key=True))
        if id(node) in self.open:
            msg = (
                "invalid YAML: an alias inside its own anchor's value,"
                " expected an alias of a value defined before it"
            )
            raise YAMLSyntaxProblem(msg, self.parsed.locate(path, key=True))
        self.built.add(id(node))
        self.parsed.values[path] = _pos(node)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if len(path) >= MAX_DEPTH:
            raise _too_deep(node.start_mark)
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            return None  # pragma: no cover - the composer makes no other node kind
        finally:
            self.open.discard(id(node))

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag == _STR:
            value: Any = node.value
            if "$" in value:
                self._check_interpolation(node, path)
            if not node.style and node.end_mark.line > node.start_mark.line:  # plain: None or ""
                self._check_joined_item(node, path)
            return value
        if _kept_as_written(node, path):
            return node.value  # `PY: 3.10` in an env mapping is the text "3.10", not the float 3.1
        try:
            return self.constructor.construct_object(node)
        except yaml.YAMLError as exc:
            msg = f"cannot read this value: {getattr(exc, 'problem', exc)}"
            self.parsed.problems.append(Problem(path, _pos(node), msg))
            return None

    def _check_joined_item(self, node: ScalarNode, path: Path) -> None:
        """A plain string over several lines with one starting `- `: a list item YAML joined to
        the line above (`commands:` then `pip install x` then `- python t.py`). As the value of
        `commands` (or `setup`), any plain string over several lines is one command, not one a
        line: also a problem."""
        source = self.text[node.start_mark.index : node.end_mark.index].split("\n")
        for i, line in enumerate(source[1:], 1):
            if line.lstrip().startswith("- "):
                where = (node.start_mark.line + 1 + i, len(line) - len(line.lstrip()) + 1)
                msg = (
                    f"'- ' starts a line inside a multi-line string, so YAML read one string"
                    f" {node.value!r}; expected a list: start every item with '- ' at one indentation"
                )
                self.parsed.problems.append(Problem(path, where, msg))
                return
        if path and path[-1] in _COMMAND_KEYS:  # `commands:` then plain lines: one command
            key = path[-1]
            msg = (
                f"{len(source)} unquoted lines, which YAML joins into one command {node.value!r};"
                f" expected one command per line: write '{key}: |' above them, or a list"
                " (for one long command, use '>')"
            )
            self.parsed.problems.append(Problem(path, _pos(node), msg))

    def _check_interpolation(self, node: ScalarNode, path: Path) -> None:
        problems = _interp.check(node.value)
        if not problems and len(path) > 2 and path[0] == "workflows" and path[2] not in _interp.SECRET_KEYS:
            problems = _interp.misplaced_secrets(node.value)
        for problem in problems:
            where = self._source_pos(node, problem.offset)
            self.parsed.problems.append(Problem(path, where, problem.message))

    def _source_pos(self, node: ScalarNode, offset: int) -> Pos:
        """Where the `${{` at ``offset`` of the node's value is written: the same-numbered `${{`
        of the node's source text, whatever the style (quoted, escaped, block, multi-line)."""
        nth = node.value.count("${{", 0, offset)
        start, end = node.start_mark.index, node.end_mark.index
        at = start - 1
        for _ in range(nth + 1):
            at = self.text.find("${{", at + 1, end)
            if at < 0:
                return _pos(node)
        newline = self.text.rfind("\n", start, at)
        if newline < 0:
            return (node.start_mark.line + 1, node.start_mark.column + 1 + at - start)
        return (node.start_mark.line + 1 + self.text.count("\n", start, at), at - newline)

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
            if not isinstance(source, MappingNode):
                value = self.build(source, (*path, "<<"))
                msg = (
                    f"got {show(value)} after '<<', expected a mapping (or a list of mappings) to merge,"
                    " e.g. '<<: *base'"
                )
                self.parsed.problems.append(Problem(path, _pos(source), msg))
                continue
            for k, v in self.build(source, path).items():
                out.setdefault(k, v)
        self.parsed.values[path] = here
