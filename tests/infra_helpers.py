"""Helpers for tests/test_infra.py: parse Bicep with pycep-parser and read its tree.

pycep returns plain dicts. A bare identifier (a reference to a param, var or resource) and a string
literal both come back as Python ``str``; :func:`resolve` substitutes variables so that role ids
written as ``var someRoleId = '<guid>'`` come back as the GUID, and callers check that a principal
is a *declared parameter* to tell a reference from a literal.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
MODULES = INFRA / "modules"
AGENT = INFRA / "agent"


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    """Parse one .bicep file (cached). Raises if pycep cannot parse it."""
    return BicepParser().parse(file_path=Path(path))


def resolve(template: dict[str, Any], node: Any) -> Any:
    """Resolve references to ``var`` declarations, including ``var.member`` accessors."""
    variables = template.get("variables", {})
    if isinstance(node, str) and node in variables:
        return resolve(template, variables[node]["value"])
    if isinstance(node, dict) and "operator" in node:
        op = node["operator"]
        if op["type"] == "property_accessor":
            base = resolve(template, op["operands"]["operand_1"])
            member = op["operands"]["operand_2"]
            if isinstance(base, dict) and isinstance(member, str) and member in base:
                return resolve(template, base[member])
    return node


def property_path(node: Any) -> str | None:
    """``a.b.c`` for a chain of property accessors (``sa.properties.primaryEndpoints.blob``)."""
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and "operator" in node and node["operator"]["type"] == "property_accessor":
        left = property_path(node["operator"]["operands"]["operand_1"])
        right = property_path(node["operator"]["operands"]["operand_2"])
        if left is not None and right is not None:
            return f"{left}.{right}"
    return None


def role_definition_guid(template: dict[str, Any], node: Any) -> str:
    """The GUID inside ``subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <guid>)``."""
    fn = node.get("function") if isinstance(node, dict) else None
    assert fn and fn["type"] == "subscription_resource_id", f"roleDefinitionId is not subscriptionResourceId(): {node}"
    params = fn["parameters"]
    assert params["resource_type"] == "Microsoft.Authorization/roleDefinitions"
    assert params["resource_name_2"] is None and params["subscription_id"] is None
    guid = resolve(template, params["resource_name_1"])
    assert isinstance(guid, str), guid
    return guid


def resource_body(resource: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(body, condition): a conditional resource nests its body one level deeper."""
    config = resource["config"]
    if "condition" in config and "config" in config and isinstance(config["config"], dict):
        return config["config"], config["condition"]
    return config, None


def role_assignments(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Microsoft.Authorization/roleAssignments resource, flattened for assertions."""
    out = []
    for symbol, res in template.get("resources", {}).items():
        if res["type"] != "Microsoft.Authorization/roleAssignments":
            continue
        body, condition = resource_body(res)
        props = body["properties"]
        out.append(
            {
                "symbol": symbol,
                "role": role_definition_guid(template, props["roleDefinitionId"]),
                "scope": body.get("scope"),
                "principal": props["principalId"],
                "principal_type": props.get("principalType"),
                "condition": condition,
                "name": body["name"],
            }
        )
    return out


def parse_systemd_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """systemd unit file -> {section: {key: [values...]}} (keys may repeat, so values are lists)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path}: directive outside a section: {raw!r}"
        assert "=" in line, f"{path}: not a key=value line: {raw!r}"
        key, value = line.split("=", 1)
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """Dockerfile -> [(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not pending:
            continue
        if not stripped and not pending:
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = pending + stripped
        pending = ""
        instruction, _, args = line.partition(" ")
        out.append((instruction.upper(), " ".join(args.split())))
    assert not pending, f"{path}: dangling line continuation"
    return out
