"""The user's rules file: which objects to change, and how.

::

    rules:
      - name: fewer replicas on the new cluster         # optional, shown in the report
        match:
          apiVersion: apps/v1        # or group: apps (not both); omit for any
          kind: Deployment           # glob; omit for any
          namespace: shop-*          # glob; cluster-scoped objects never match a namespace
          name: web-*                # glob
          labels: {tier: frontend}   # every label must be equal
        patch:                       # RFC 6902 JSON Patch, applied in order
          - {op: test, path: /spec/replicas, value: 10}
          - {op: replace, path: /spec/replicas, value: 2}
        set:                         # JSON Pointer → value; missing objects on the way created
          /metadata/labels/migrated: "yes"
        delete:                      # JSON Pointers; absent ones are fine
          - /metadata/annotations/old-tool~1checksum
    differences: {...}               # see migrator.transform.differences

Rules see objects after the built-in conversions and the difference rules, so they match
the new apiVersion. Within a rule: patch, then set, then delete, all or nothing: a failing
``test`` leaves the object as it was for that rule (and is recorded), as does any operation
that cannot apply. The whole file is validated when loaded, before any snapshot is read:
errors name the file, the rule number and the field.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migrator.errors import DifferencesInvalid, PatchError, PatchTestFailed, RulesInvalid
from migrator.resources.objects import Obj
from migrator.transform import jsonpatch
from migrator.transform.base import Change, Severity
from migrator.transform.differences import DifferencesConfig, parse_config

TOP_KEYS = ("rules", "differences")
RULE_KEYS = ("name", "match", "patch", "set", "delete")
MATCH_KEYS = ("apiVersion", "group", "kind", "namespace", "name", "labels")


class _Invalid(ValueError):
    """A problem at ``field`` of one rule; turned into RulesInvalid with file and rule."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field_name
        self.problem = problem


@dataclass(frozen=True)
class Match:
    """What a rule applies to; every given criterion must hold."""

    api_version: str | None = None
    group: str | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, obj: Obj) -> bool:
        api_version = str(obj.get("apiVersion") or "")
        if self.api_version is not None and api_version != self.api_version:
            return False
        if self.group is not None and api_version.rpartition("/")[0] != self.group:
            return False
        if self.kind is not None and not fnmatch.fnmatchcase(str(obj.get("kind") or ""), self.kind):
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and not (
            meta.get("namespace") and fnmatch.fnmatchcase(meta["namespace"], self.namespace)
        ):
            return False
        if self.name is not None and not fnmatch.fnmatchcase(
            str(meta.get("name") or ""), self.name
        ):
            return False
        labels = meta.get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items())


@dataclass(frozen=True)
class Rule:
    """One validated rule: ``operations`` are JSON Patch operations plus ``set``/``delete``."""

    number: int
    name: str
    match: Match
    operations: tuple[Mapping[str, Any], ...]

    @property
    def label(self) -> str:
        """``rule 3 (fewer replicas)``: how reports and changes name it."""
        return f"rule {self.number}" + (f" ({self.name})" if self.name else "")

    def apply(self, obj: Obj) -> tuple[Obj, list[Change]]:
        """The object with the rule applied (or unchanged) and the changes, or why not."""
        result = copy.deepcopy(obj)
        changes = []
        try:
            for operation in self.operations:
                before = _value_at(result, operation["path"])
                result = _apply(result, operation)
                if operation["op"] != "test":
                    changes.append(self._change(operation, before, result))
        except PatchTestFailed as exc:
            return obj, [
                Change(
                    path=str(operation["path"]),
                    action="skip",
                    source=self.label,
                    reason=f"{self.label} not applied: {exc}",
                )
            ]
        except PatchError as exc:
            return obj, [
                Change(
                    path=str(operation["path"]),
                    action="skip",
                    source=self.label,
                    severity=Severity.REVIEW,
                    reason=f"{self.label} could not be applied: {exc}",
                )
            ]
        return result, changes

    def _change(self, operation: Mapping[str, Any], before: Any, result: Obj) -> Change:
        op = operation["op"]
        after = None if op in ("remove", "delete") else _value_at(result, operation["path"])
        reason = f"{self.label}: {op}" + (
            f" from {operation['from']}" if "from" in operation else ""
        )
        return Change(
            path=operation["path"],
            action=op,
            reason=reason,
            before=before,
            after=after,
            source=self.label,
        )


def _value_at(doc: Any, pointer: str) -> Any:
    try:
        return copy.deepcopy(jsonpatch.resolve(doc, pointer))
    except PatchError:
        return None


def _apply(doc: Obj, operation: Mapping[str, Any]) -> Any:
    """One operation: a JSON Patch one, or ``set`` / ``delete`` (forgiving by design)."""
    if operation["op"] == "set":
        return _set(doc, operation["path"], copy.deepcopy(operation["value"]))
    if operation["op"] == "delete":
        if jsonpatch.exists(doc, operation["path"]):
            jsonpatch.remove(doc, operation["path"])
        return doc
    return jsonpatch.apply_operation(doc, operation)


def _set(doc: Obj, pointer: str, value: Any) -> Any:
    """Set ``pointer`` to ``value``, creating missing objects on the way."""
    tokens = jsonpatch.parse_pointer(pointer)
    node: Any = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if not isinstance(node.get(token), dict | list):
                node[token] = {}
            node = node[token]
        else:  # a list (an index must exist) or a scalar (an error)
            node = jsonpatch.resolve(node, jsonpatch.join_pointer(token))
    last = tokens[-1]
    if isinstance(node, list):
        if last == "-" or (last.isdigit() and int(last) == len(node)):
            node.append(value)
        else:
            jsonpatch.replace(node, jsonpatch.join_pointer(last), value)
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise PatchError(f"{pointer}: the parent is not an object or array")
    return doc


@dataclass(frozen=True)
class RuleSet:
    """A loaded, validated rules file."""

    file: str
    sha256: str
    content: str
    rules: tuple[Rule, ...] = ()
    differences: DifferencesConfig = field(default_factory=DifferencesConfig)

    def apply(self, obj: Obj) -> tuple[Obj, list[Change]]:
        """Every matching rule in file order; returns the object and all changes."""
        changes: list[Change] = []
        for rule in self.rules:
            if rule.match.matches(obj):
                obj, made = rule.apply(obj)
                changes += made
        return obj, changes

    def to_manifest(self) -> dict[str, Any]:
        """What the new snapshot's manifest records: which file, its digest and its text."""
        return {"file": self.file, "sha256": self.sha256, "content": self.content}


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file; :class:`RulesInvalid` names file, rule and field."""
    file = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise RulesInvalid(file, "", f"cannot read: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RulesInvalid(file, "", f"not UTF-8 text: {exc}") from exc
    return parse_rules(text, file, sha256=hashlib.sha256(raw).hexdigest())


def parse_rules(text: str, file: str = "<rules>", *, sha256: str | None = None) -> RuleSet:
    """Validate the text of a rules file (see the module doc for the format)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesInvalid(file, where, f"not valid YAML: {problem}") from exc
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise RulesInvalid(file, "", "must be a mapping with 'rules' and/or 'differences'")
    unknown = sorted(set(doc) - set(TOP_KEYS), key=str)
    if unknown:
        raise RulesInvalid(file, str(unknown[0]), f"unknown section (known: {', '.join(TOP_KEYS)})")
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, list):
        raise RulesInvalid(file, "rules", "must be a list of rules")
    rules = []
    for number, raw in enumerate(raw_rules, start=1):
        try:
            rules.append(_rule(number, raw))
        except _Invalid as exc:
            name = raw.get("name") if isinstance(raw, Mapping) else None
            label = f"rule {number}" + (f" ({name})" if isinstance(name, str) and name else "")
            raise RulesInvalid(file, f"{label}: {exc.field}", exc.problem) from None
    try:
        differences = parse_config(doc.get("differences"))
    except DifferencesInvalid as exc:
        raise RulesInvalid(file, exc.field, exc.problem) from None
    digest = sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest()
    return RuleSet(
        file=file, sha256=digest, content=text, rules=tuple(rules), differences=differences
    )


def _rule(number: int, raw: Any) -> Rule:
    if not isinstance(raw, Mapping):
        raise _Invalid("rule", "must be a mapping with 'match' and operations")
    unknown = sorted(set(raw) - set(RULE_KEYS), key=str)
    if unknown:
        raise _Invalid(str(unknown[0]), f"unknown field (known: {', '.join(RULE_KEYS)})")
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise _Invalid("name", "must be a string")
    if "match" not in raw:
        raise _Invalid("match", "missing: say which objects the rule applies to")
    operations = _patch(raw.get("patch")) + _sets(raw.get("set")) + _deletes(raw.get("delete"))
    if not operations:
        raise _Invalid("patch", "the rule has no operation (patch, set or delete)")
    return Rule(number=number, name=name, match=_match(raw["match"]), operations=tuple(operations))


def _match(raw: Any) -> Match:
    if not isinstance(raw, Mapping) or not raw:
        raise _Invalid("match", f"must be a non-empty mapping of {', '.join(MATCH_KEYS)}")
    unknown = sorted(set(raw) - set(MATCH_KEYS), key=str)
    if unknown:
        raise _Invalid(f"match.{unknown[0]}", f"unknown field (known: {', '.join(MATCH_KEYS)})")
    if "apiVersion" in raw and "group" in raw:
        raise _Invalid("match.group", "give apiVersion or group, not both")
    for key in ("apiVersion", "group", "kind", "namespace", "name"):
        if key in raw and not isinstance(raw[key], str):
            raise _Invalid(f"match.{key}", "must be a string")
    labels = raw.get("labels", {})
    if not isinstance(labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
    ):
        raise _Invalid("match.labels", "must map label names to string values")
    return Match(
        api_version=raw.get("apiVersion"),
        group=raw.get("group"),
        kind=raw.get("kind"),
        namespace=raw.get("namespace"),
        name=raw.get("name"),
        labels=dict(labels),
    )


def _pointer(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(where, "must be a JSON Pointer string such as /spec/replicas")
    if not value.startswith("/"):
        raise _Invalid(where, f"{value!r} is not a JSON Pointer: it must start with '/'")
    return value


def _patch(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _Invalid("patch", "must be a list of JSON Patch operations")
    operations = []
    for index, op in enumerate(raw):
        where = f"patch[{index}]"
        if not isinstance(op, Mapping):
            raise _Invalid(where, "must be a mapping such as {op: replace, path: /x, value: 1}")
        kind = op.get("op")
        if kind not in jsonpatch.OPERATIONS:
            raise _Invalid(
                f"{where}.op", f"{kind!r} is not one of {', '.join(jsonpatch.OPERATIONS)}"
            )
        allowed = {"op", "path", *jsonpatch.REQUIRED[kind]}
        unknown = sorted(set(op) - allowed, key=str)
        if unknown:
            raise _Invalid(f"{where}.{unknown[0]}", f"not a field of a {kind} operation")
        for member in ("path", *jsonpatch.REQUIRED[kind]):
            if member not in op:
                raise _Invalid(f"{where}.{member}", f"missing (a {kind} operation needs it)")
        _pointer(op["path"], f"{where}.path")
        if "from" in op:
            _pointer(op["from"], f"{where}.from")
        operations.append(dict(op))
    return operations


def _sets(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, Mapping):
        raise _Invalid("set", "must map JSON Pointers to values")
    return [
        {"op": "set", "path": _pointer(path, f"set[{path!r}]"), "value": value}
        for path, value in raw.items()
    ]


def _deletes(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _Invalid("delete", "must be a list of JSON Pointers")
    return [
        {"op": "delete", "path": _pointer(path, f"delete[{index}]")}
        for index, path in enumerate(raw)
    ]
