"""Schema and OpenAPI documents as files: JSON or YAML, split across files, OpenAPI 3.0 or 3.1.

- YAML is read with the safe loader and without YAML's implicit dates, so that
  ``2024-01-01`` stays the string JSON Schema expects; anything that is not plain JSON
  data (tags, binary, non-string keys) is refused.
- ``$ref``s to other local files (``note.yaml#/Note``, ``./common.json``) are brought
  into the document that uses them (``bundled``), each file once, so the validator never
  reads the disk or the network at request time. Remote references are refused.
- OpenAPI 3.0 schemas are rewritten in the 2020-12 dialect that 3.1 uses (``nullable``,
  boolean ``exclusiveMinimum``/``exclusiveMaximum``, ``$ref`` siblings ignored).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import yaml

from bastion.errors import DocumentError

MAX_FILES = 256
# Where other files' contents go inside the document that refers to them.
BUNDLE_SCHEMA = "$defs"
BUNDLE_OPENAPI = "x-bastion-files"


class _Loader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's core schema (as OpenAPI 3.1 and JSON read plain
    scalars): ``NO`` and ``on`` stay strings, ``010`` is ten, dates stay strings."""


_YAML_11_ONLY = {f"tag:yaml.org,2002:{name}" for name in ("bool", "int", "float", "timestamp")}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in _YAML_11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# YAML 1.2.2 §10.3.2, the core schema's tag resolution.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _core_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


_Loader.add_constructor("tag:yaml.org,2002:int", _core_int)


def load_document(path: Path) -> Any:
    """A JSON or YAML file as JSON data; ``ValueError`` naming the file otherwise."""
    try:
        raw = path.read_bytes()
        if path.suffix.lower() in (".yaml", ".yml"):
            document = yaml.load(raw, Loader=_Loader)  # noqa: S506 - a safe loader
        else:
            document = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError, yaml.YAMLError) as exc:
        raise DocumentError(f"{path}: not a readable JSON or YAML document ({exc})") from exc
    _require_json(document, path)
    return document


def _require_json(node: Any, path: Path) -> None:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise DocumentError(f"{path}: keys must be strings")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise DocumentError(f"{path}: numbers must be finite")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise DocumentError(f"{path}: {type(item).__name__} is not JSON data")


def bundled(path: Path, holder: str) -> Any:
    """The document at ``path`` with every file it refers to copied under ``holder``
    (``/{holder}/file1``, ...) and each reference rewritten to point there."""
    root = load_document(path)
    keys: dict[Path, str] = {path.resolve(): ""}
    bundle: dict[str, Any] = {}
    pending: list[tuple[Any, Path, str]] = [(root, path.resolve(), "")]
    while pending:
        document, source, prefix = pending.pop()
        for node in _ref_holders(document):
            target, _, fragment = node["$ref"].partition("#")
            if fragment and not fragment.startswith("/"):
                raise DocumentError(f"{source}: only JSON pointer fragments are supported")
            if not target:
                node["$ref"] = f"#{prefix}{fragment}"
                continue
            parts = urlsplit(target)
            if parts.scheme or parts.netloc:
                raise DocumentError(f"{source}: only references to local files are supported")
            found = (source.parent / unquote(parts.path)).resolve()
            if found not in keys:
                if len(keys) > MAX_FILES:
                    raise DocumentError(f"{path}: refers to more than {MAX_FILES} files")
                keys[found] = f"file{len(keys)}"
                other = load_document(found)
                bundle[keys[found]] = other
                pending.append((other, found, f"/{holder}/{keys[found]}"))
            key = keys[found]
            node["$ref"] = f"#{f'/{holder}/{key}' if key else ''}{fragment}"
    if bundle:
        if not isinstance(root, dict):
            raise DocumentError(f"{path}: a document that refers to other files must be an object")
        root.setdefault(holder, {}).update(bundle)
    return root


def _ref_holders(document: Any) -> list[dict[str, Any]]:
    found = []
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                found.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def openapi_version(document: Any) -> str:
    """``"3.0"`` or ``"3.1"``; ``ValueError`` for Swagger 2.0 or anything else."""
    version = document.get("openapi") if isinstance(document, dict) else None
    if isinstance(version, str) and version[:4] in ("3.0.", "3.1."):
        return version[:3]
    if isinstance(document, dict) and "swagger" in document:
        raise DocumentError("Swagger 2.0 documents are not supported: convert them to OpenAPI 3")
    raise DocumentError("not an OpenAPI 3.0 or 3.1 document (no openapi: 3.x.y field)")


def upgrade_openapi_30(document: Any) -> None:
    """Rewrite OpenAPI 3.0 schema keywords, in place, as JSON Schema 2020-12 says them."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("$ref"), str) and len(node) > 1:
            # OpenAPI 3.0 §4.7.23: "This object cannot be extended ... additional
            # properties SHALL be ignored"; in 2020-12 they would apply.
            ref = node["$ref"]
            node.clear()
            node["$ref"] = ref
            continue
        for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            # 3.0: a boolean beside minimum/maximum; 2020-12: the bound itself.
            if isinstance(node.get(bound), bool) and node.pop(bound) and limit in node:
                node[bound] = node.pop(limit)
        if node.get("nullable") is True:
            _allow_null(node)
        node.pop("nullable", None)
        stack.extend(node.values())


def _allow_null(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
