"""Reading the YAML and JSON files users give: strictly, within limits, with short errors.

Every YAML or JSON input of surgisim (hyperparameters, randomisation ranges, tool files, scene
files, shield limits, waypoints, run and sweep records, rl_zoo3 settings) is read here, so that
each gets the same guarantees:

- only a regular file is read (a FIFO or a device would block or never end), of at most
  ``MAX_BYTES``, as UTF-8 text;
- YAML: PyYAML's safe loader (nothing is evaluated; ``!!python/...`` tags are refused), numbers
  as YAML 1.2 reads them (``3e-4`` is a number, not a string), and a key given twice is an error;
- JSON: a key given twice is an error (``comments=True`` also takes the ``//`` and ``/* */``
  comments of the dVRK's tool files);
- a document may hold at most ``MAX_VALUES`` values, counted as its aliases expand, and nest at
  most ``MAX_DEPTH`` deep: a few hundred bytes of YAML aliases can stand for billions of values;
- errors are ``DocumentError`` (a ``ValueError``) naming the file and, where the parser knows it,
  the line; a value is quoted through ``excerpt``, never whole.
"""

from __future__ import annotations

import json
import math
import os
import re
import reprlib
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1 << 20  # the largest file surgisim itself writes or ships is a few kB
MAX_VALUES = 100_000
MAX_DEPTH = 64
EXCERPT_CHARS = 80


class DocumentError(ValueError):
    """A file that cannot be read as the document it should be."""


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 6, 6, 40, 40


def is_number(value: Any) -> bool:
    """A finite int or float, not a bool (YAML's ``true`` is no number of metres)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short ``repr`` of ``value`` for an error message: nested and long values are cut."""
    return shorten(_REPR.repr(value), limit)


def shorten(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text``, cut to ``limit`` characters (the cut marked ``...``)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_text(path: str | os.PathLike, what: str, max_bytes: int = MAX_BYTES) -> str:
    """The text of a regular file of at most ``max_bytes``; a ``DocumentError`` saying what is wrong."""
    path = Path(path)
    try:
        status = os.stat(path)  # before opening: opening a FIFO would block
    except OSError as error:
        raise DocumentError(f"{path}: cannot read the {what} ({error.strerror})") from None
    if not stat.S_ISREG(status.st_mode):
        raise DocumentError(f"{path}: the {what} must be a regular file, not a folder, FIFO or device")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as error:
        raise DocumentError(f"{path}: cannot read the {what} ({error.strerror})") from None
    if len(data) > max_bytes:
        raise DocumentError(f"{path}: the {what} is over {max_bytes // 1024} KiB; it cannot be one")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DocumentError(f"{path}: the {what} is not UTF-8 text (byte {error.start})") from None


def _check_length(text: str, source: str, what: str) -> None:
    if len(text) > MAX_BYTES:
        raise DocumentError(f"{source}: the {what} is over {MAX_BYTES // 1024} KiB; it cannot be one")


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats and no duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<: *anchor`` may be overridden by explicit keys
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the safe constructor says so itself
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {excerpt(key)} appears twice (lines {first} and {line})", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


# YAML 1.1 (PyYAML) reads 3e-4 and 1e6 as strings: a float needs a dot there. YAML 1.2 does not.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _check_expanded_size(root: yaml.Node, source: str) -> None:
    """A ``DocumentError`` when the node graph, aliases expanded, holds over ``MAX_VALUES`` values
    or nests over ``MAX_DEPTH`` deep. Each distinct node is visited once (sizes are memoised)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        children = _children(node)
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in size)
            continue
        size[id(node)] = 1 + sum(size[id(child)] for child in children)
        depth[id(node)] = 1 + max((depth[id(child)] for child in children), default=0)
        if size[id(node)] > MAX_VALUES:
            raise DocumentError(f"{source}: holds over {MAX_VALUES} values once its aliases are expanded")
        if depth[id(node)] > MAX_DEPTH:
            raise DocumentError(f"{source}: nests over {MAX_DEPTH} levels deep")


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def parse_yaml(text: str, source: str, what: str = "YAML", loader_class: type[StrictLoader] = StrictLoader) -> Any:
    """A YAML document from ``text`` (``source`` names it in errors), read as the module docstring
    says; ``loader_class``: a ``StrictLoader`` that takes a few more tags."""
    _check_length(text, source, what)
    loader = None
    try:
        loader = loader_class(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        mark, problem = getattr(error, "problem_mark", None), getattr(error, "problem", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise DocumentError(f"{source}: not valid {what}: {where}{shorten(problem or str(error), 200)}") from None
    except RecursionError:
        raise DocumentError(f"{source}: nests over {MAX_DEPTH} levels deep") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: str | os.PathLike, what: str = "YAML", loader_class: type[StrictLoader] = StrictLoader) -> Any:
    """The content of a YAML file (see the module docstring and ``parse_yaml``)."""
    return parse_yaml(read_text(path, what), str(path), what, loader_class)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise DocumentError(f"key {excerpt(key)} appears twice in one object")
        mapping[key] = value
    return mapping


def _json_depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


def parse_json(text: str, source: str, what: str = "JSON", comments: bool = False) -> Any:
    """A JSON document from ``text`` (``source`` names it in errors); ``comments``: ``//`` and
    ``/* */`` comments are taken out first."""
    _check_length(text, source, what)
    try:
        document = json.loads(strip_comments(text) if comments else text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as error:
        raise DocumentError(f"{source}: not valid {what}: line {error.lineno}: {error.msg}") from None
    except DocumentError as error:
        raise DocumentError(f"{source}: {error}") from None
    except RecursionError:
        raise DocumentError(f"{source}: nests over {MAX_DEPTH} levels deep") from None
    if _json_depth(document) > MAX_DEPTH:
        raise DocumentError(f"{source}: nests over {MAX_DEPTH} levels deep")
    return document


def read_json(path: str | os.PathLike, what: str = "JSON", comments: bool = False) -> Any:
    """The content of a JSON file (see ``parse_json``)."""
    return parse_json(read_text(path, what), str(path), what, comments)


def strip_comments(text: str) -> str:
    """JSON text without ``//`` and ``/* */`` comments (strings kept), as the dVRK's files carry them."""
    out, i, in_string = [], 0, False
    while i < len(text):
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\":
                out.append(text[i + 1 : i + 2])
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
            out.append(char)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            if i < 0:
                break
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)
