"""Azure RBAC as the storage service applies it, for tests: the built-in roles infra/ assigns (their
official permissions), each identity's grants derived from the Bicep, and the permission each Blob or
Table REST request needs.

Sources (learn.microsoft.com): "Azure built-in roles for Storage" for the roles' Actions and DataActions,
and "Authorize with Microsoft Entra ID (REST API)", section "Permissions for calling data operations", for
what each operation requires. Storage checks a data-plane request against both lists (e.g. Get Container
Properties needs the Action ``containers/read``, Put Blob the DataAction ``blobs/write``), so a role here is
one set of both.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from .infra_helpers import MODULES, parse, resource_body, role_assignments

B = "Microsoft.Storage/storageAccounts/blobServices"
T = "Microsoft.Storage/storageAccounts/tableServices"

# Built-in role definition id -> (name, Actions + DataActions), as published.
ROLES: dict[str, tuple[str, frozenset[str]]] = {
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": ("Storage Blob Data Contributor", frozenset({
        f"{B}/containers/delete", f"{B}/containers/read", f"{B}/containers/write",
        f"{B}/generateUserDelegationKey/action",
        f"{B}/containers/blobs/delete", f"{B}/containers/blobs/read", f"{B}/containers/blobs/write",
        f"{B}/containers/blobs/move/action", f"{B}/containers/blobs/add/action",
    })),
    "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1": ("Storage Blob Data Reader", frozenset({
        f"{B}/containers/read", f"{B}/generateUserDelegationKey/action", f"{B}/containers/blobs/read",
    })),
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", frozenset({
        f"{B}/containers/*", f"{B}/generateUserDelegationKey/action", f"{B}/containers/blobs/*",
    })),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", frozenset({
        f"{T}/tables/read", f"{T}/tables/write", f"{T}/tables/delete",
        f"{T}/tables/entities/read", f"{T}/tables/entities/write", f"{T}/tables/entities/delete",
        f"{T}/tables/entities/add/action", f"{T}/tables/entities/update/action",
    })),
    "76199698-9eea-4c19-bc75-cec21354c6b6": ("Storage Table Data Reader", frozenset({
        f"{T}/tables/read", f"{T}/tables/entities/read",
    })),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": ("Storage Queue Data Contributor", frozenset({
        "Microsoft.Storage/storageAccounts/queueServices/queues/delete",
        "Microsoft.Storage/storageAccounts/queueServices/queues/read",
        "Microsoft.Storage/storageAccounts/queueServices/queues/write",
        "Microsoft.Storage/storageAccounts/queueServices/queues/messages/delete",
        "Microsoft.Storage/storageAccounts/queueServices/queues/messages/read",
        "Microsoft.Storage/storageAccounts/queueServices/queues/messages/write",
        "Microsoft.Storage/storageAccounts/queueServices/queues/messages/process/action",
    })),
}  # fmt: skip

ACCOUNT = ("account", "")
Scope = tuple[str, str]  # ("container", name) | ("table", name) | ACCOUNT
Need = tuple[Scope, tuple[frozenset[str], ...]]  # at this scope, any one of these sets of actions

_SCOPE_KINDS = {
    "Microsoft.Storage/storageAccounts/blobServices/containers": "container",
    "Microsoft.Storage/storageAccounts/tableServices/tables": "table",
    "Microsoft.Storage/storageAccounts": "account",
}


@dataclass(frozen=True)
class Grant:
    role: str  # role definition id
    kind: str  # container | table | account
    name_param: str  # the Bicep parameter that names the scope (e.g. dataContainerName)

    @property
    def role_name(self) -> str:
        return ROLES[self.role][0]


def archive_grants(principal_param: str) -> list[Grant]:
    """The archive role assignments of one identity (``agentPrincipalId``, ``functionPrincipalId``), read
    from infra/modules/archive-storage.bicep: role, and the container or table it is scoped to."""
    template = parse(MODULES / "archive-storage.bicep")
    grants = []
    for ra in role_assignments(template):
        if ra["principal"] != principal_param:
            continue
        res = template["resources"][ra["scope"]]
        body, _ = resource_body(res)
        kind = _SCOPE_KINDS[res["type"]]
        grants.append(Grant(ra["role"], kind, "" if kind == "account" else str(body["name"])))
    return grants


def permissions(grants: list[Grant], names: Mapping[str, str]) -> dict[Scope, frozenset[str]]:
    """Actions per scope, with each scope's Bicep name parameter replaced by the deployed name."""
    out: dict[Scope, set[str]] = {}
    for g in grants:
        scope = ACCOUNT if g.kind == "account" else (g.kind, names[g.name_param])
        out.setdefault(scope, set()).update(ROLES[g.role][1])
    return {k: frozenset(v) for k, v in out.items()}


def allowed(granted: Mapping[Scope, frozenset[str]], needs: list[Need]) -> list[str]:
    """The missing permissions (empty when every need is met). An account-scope grant covers every scope."""
    missing = []
    for scope, alternatives in needs:
        have = set(granted.get(scope, frozenset())) | set(granted.get(ACCOUNT, frozenset()))
        if not any(all(_has(have, a) for a in alt) for alt in alternatives):
            missing.append(f"{' or '.join('+'.join(sorted(alt)) for alt in alternatives)} on {scope[0]} {scope[1]}")
    return missing


def _has(have: set[str], action: str) -> bool:
    return any(h == action or fnmatch.fnmatchcase(action, h) for h in have)


def _one(*actions: str) -> tuple[frozenset[str], ...]:
    return (frozenset(actions),)


# -- what a request needs ------------------------------------------------------------------------------
def blob_needs(method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str]) -> list[Need]:
    """Blob service: the permission table of "Permissions for calling data operations"."""
    parts = unquote(path).lstrip("/").split("/", 2)  # account, container, blob
    container = parts[1] if len(parts) > 1 else ""
    blob = parts[2] if len(parts) > 2 else ""
    comp = query.get("comp", "")
    if not container:
        if comp == "list":
            return [(ACCOUNT, _one(f"{B}/containers/read"))]
        if comp == "userdelegationkey":
            return [(ACCOUNT, _one(f"{B}/generateUserDelegationKey/action"))]
        return [(ACCOUNT, _one(f"{B}/write" if method == "PUT" else f"{B}/read"))]
    scope: Scope = ("container", container)
    if not blob:
        if comp == "list":
            return [(scope, _one(f"{B}/containers/blobs/read"))]
        if comp == "acl":
            return [(scope, _one(f"{B}/containers/{'setAcl' if method == 'PUT' else 'getAcl'}/action"))]
        if method in ("GET", "HEAD"):
            return [(scope, _one(f"{B}/containers/read"))]
        if method == "DELETE":
            return [(scope, _one(f"{B}/containers/delete"))]
        return [(scope, _one(f"{B}/containers/write"))]  # create, metadata, lease, batch parent
    if comp == "tags":
        return [(scope, _one(f"{B}/containers/blobs/tags/{'write' if method == 'PUT' else 'read'}"))]
    if method in ("GET", "HEAD"):
        return [(scope, _one(f"{B}/containers/blobs/read"))]
    if method == "DELETE":
        return [(scope, _one(f"{B}/containers/blobs/delete"))]
    write = _one(f"{B}/containers/blobs/write")
    if comp == "" and headers.get("if-none-match") == "*":  # creates a new blob: add is enough
        write = (frozenset({f"{B}/containers/blobs/write"}), frozenset({f"{B}/containers/blobs/add/action"}))
    needs: list[Need] = [(scope, write)]
    source = headers.get("x-ms-copy-source")
    if source:  # same account: the caller must be able to read the source
        src = unquote(urlsplit(source).path).lstrip("/").split("/", 2)
        if len(src) > 1:
            needs.append((("container", src[1]), _one(f"{B}/containers/blobs/read")))
    return needs


_ENTITY = re.compile(r"^([A-Za-z][A-Za-z0-9]{2,62})(\(.*\))?$")
_SUBREQUEST = re.compile(rb"^(GET|POST|PUT|MERGE|PATCH|DELETE) (\S+) HTTP/1\.1\r?\n((?:[^\r\n]+\r?\n)*)", re.M)


def table_needs(method: str, path: str, headers: Mapping[str, str], body: bytes = b"") -> list[Need]:
    """Table service: each operation of an entity-group transaction is authorized separately."""
    rest = unquote(path).lstrip("/").split("/", 1)
    resource = rest[1] if len(rest) > 1 else ""
    if resource == "":
        return [(ACCOUNT, _one(f"{T}/{'write' if method == 'PUT' else 'read'}"))]
    if resource == "$batch":
        needs: list[Need] = []
        for m in _SUBREQUEST.finditer(body):
            sub_headers = {}
            for line in m.group(3).decode("latin-1").splitlines():
                k, _, v = line.partition(":")
                sub_headers[k.strip().lower()] = v.strip()
            needs += table_needs(m.group(1).decode(), urlsplit(m.group(2).decode()).path, sub_headers)
        return needs or [(ACCOUNT, _one(f"{T}/tables/entities/write"))]  # unparsable: refuse
    if resource == "Tables":
        if method == "POST":
            name = json.loads(body or b"{}").get("TableName", "")
            return [(("table", name), _one(f"{T}/tables/write"))]
        return [(ACCOUNT, _one(f"{T}/tables/read"))]  # Query Tables: account scope or above
    m = re.match(r"^Tables\('([^']+)'\)$", resource)
    if m:
        return [(("table", m.group(1)), _one(f"{T}/tables/{'delete' if method == 'DELETE' else 'read'}"))]
    m = _ENTITY.match(resource)
    if not m:
        return [(ACCOUNT, _one(f"{T}/unknown"))]
    scope: Scope = ("table", m.group(1))
    e = f"{T}/tables/entities"
    if method == "GET":
        return [(scope, _one(f"{e}/read"))]
    if method == "DELETE":
        return [(scope, _one(f"{e}/delete"))]
    if method == "POST":
        return [(scope, (frozenset({f"{e}/write"}), frozenset({f"{e}/add/action"})))]
    if "if-match" in headers:  # Update / Merge Entity
        return [(scope, (frozenset({f"{e}/write"}), frozenset({f"{e}/update/action"})))]
    return [(scope, (frozenset({f"{e}/write"}), frozenset({f"{e}/add/action", f"{e}/update/action"})))]
