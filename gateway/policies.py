"""The gateway's policies as Envoy configuration: what envoy.yaml.j2 and firecrest.lua.j2 need for the
rate limits, the IP filter and the access control lists of `gateway:` (services/common/gateway_policies.py).

Called by gateway/render.py (`template_values()`); pure functions of the configuration and the API's
google.api.http rules, tested in tests/unit/test_gateway_policies.py.

How the pieces meet in Envoy (filters in request order):
- the Lua filter names the system of a REST call in the `x-firecrest-system` header (from the path's
  `{system_name}`; a query parameter that would override it is refused), and `*` for a native gRPC
  call of a method that takes a system (Envoy does not read the message: every system's rules apply);
- RBAC on the client address (before authentication): the global lists, and the system's;
- RBAC on the token's claims (after the transcoder, so that the API area is the gRPC service of the
  path, the same for REST and native gRPC): the rules for the call's area and system must all hold;
- local rate limit (after the claims): per verified user (jwt_authn's payload) and per client address,
  the budget of the route's class: `expensive` routes (job submissions, transfers) carry it in their
  route metadata, every other route is `default`.
When no policy is configured the corresponding filter is left out of the configuration altogether.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

from gateway.api_descriptor import method_rules
from services.common.gateway_policies import AccessRule, GatewayPolicies, IpFilter, TokenBucket

SYSTEM_HEADER = "x-firecrest-system"  # set by the Lua filter only (it drops client-sent x-firecrest-*)
ANY_SYSTEM = "*"  # native gRPC call of a method that takes a system
SYSTEM_VARIABLE = "system_name"
RATE_METADATA = ("firecrest", "rate_class")  # route metadata: filter namespace, key
DEFAULT_CLASS = "default"
EXPENSIVE_CLASS = "expensive"
# The calls of the `expensive` class, by their REST rule: job submissions (POST under a system's
# /compute/{system}/jobs) and transfers (anything under /filesystem/{system}/transfer/).
EXPENSIVE_RULES = ((re.compile(r"^/compute/\{system_name\}/jobs(/.*)?$"), {"POST"}),
                   (re.compile(r"^/filesystem/\{system_name\}/transfer/"), None))
# Every bucket is refilled once a second: a refused caller gets a token back within this many seconds.
RETRY_AFTER_SECONDS = 1
MAX_DYNAMIC_DESCRIPTORS = 10000  # users and addresses with a bucket of their own (least recently used go)


@dataclass(frozen=True)
class ApiMethod:
    """One google.api.http rule of an API method."""
    service: str  # config name of its service: "compute"
    grpc_path: str  # "/firecrest_mesh.compute.v1.ComputeService/SubmitJob"
    method: str  # HTTP method of the rule
    template: str  # REST path template: "/compute/{system_name}/jobs"


def api_methods(files) -> list[ApiMethod]:
    """Every REST rule (additional bindings included) of the API files' services (api_descriptor._api_files)."""
    return [ApiMethod(f.package.split(".")[1], f"/{f.package}.{service.name}/{method.name}", verb, template)
            for f in files for service in f.service for method in service.method
            for verb, template, _ in method_rules(method)]


def is_expensive(m: ApiMethod) -> bool:
    return any(pattern.match(m.template) and (methods is None or m.method in methods)
               for pattern, methods in EXPENSIVE_RULES)


def system_routes_by_area(methods: list[ApiMethod]) -> dict[str, list[str]]:
    """The Lua patterns of the REST routes that name a system, by their first path segment (`compute`,
    `filesystem`, `status`): the Lua filter tries only the patterns of the call's first segment (about
    5 instead of every route's 35 for a status call)."""
    areas: dict[str, set[str]] = {}
    for m in methods:
        pattern = system_route_pattern(m.template)
        if pattern is None:
            continue
        first = m.template.split("/")[1]
        if not first or "{" in first or "*" in first:
            raise ValueError(f"{m.template}: a route naming a system must start with a literal segment")
        areas.setdefault(first, set()).add(pattern)
    return {area: sorted(patterns) for area, patterns in sorted(areas.items())}


def system_route_pattern(template: str) -> str | None:
    """The Lua pattern of a REST template with `{system_name}` captured, or None when it has none:
    `/compute/{system_name}/jobs/{job_id}` → `^/compute/([^/]+)/jobs/[^/]+/?$`."""
    if "{" + SYSTEM_VARIABLE not in template:
        return None
    out = []
    for seg in template.split("/"):
        if seg.startswith("{" + SYSTEM_VARIABLE) and seg.endswith("}"):
            out.append("([^/]+)")
        elif seg.startswith("{") or seg == "*":
            out.append("[^/]+")
        elif seg == "**":
            out.append(".*")
        else:
            out.append(re.sub(r"([\^$()%.\[\]*+\-?])", r"%\1", seg))
    return "^" + "/".join(out) + "/?$"


# --- RBAC ---------------------------------------------------------------------------------------------

def _all_of(ids: list[dict], key: str) -> dict:
    """RBAC principals (key and_ids) or permissions (and_rules) that must all match; none: any."""
    if not ids:
        return {"any": True}
    if len(ids) == 1:
        return ids[0]
    return {key: {"ids" if key.endswith("ids") else "rules": ids}}


def _any_of(ids: list[dict], key: str) -> dict:
    return ids[0] if len(ids) == 1 else {key: {"ids" if key.endswith("ids") else "rules": ids}}


def _cidr(network: str) -> dict:
    address, length = network.split("/")
    return {"remote_ip": {"address_prefix": address, "prefix_len": int(length)}}


def address_principal(f: IpFilter) -> list[dict]:
    """Principals an address must match: in `allow` (if any), not in `deny` (remote_ip: the client's
    address as the connection manager found it, X-Forwarded-For hops trusted as configured)."""
    ids = []
    if f.allow:
        ids.append(_any_of([_cidr(n) for n in f.allow], "or_ids"))
    if f.deny:
        ids.append({"not_id": _any_of([_cidr(n) for n in f.deny], "or_ids")})
    return ids


def claim_principal(rule: AccessRule) -> dict:
    """The verified token (jwt_authn's payload_in_metadata) has `claim` containing `contains`: a list
    holding it, or a string holding it as a space-separated word (`scope`)."""
    word = re.escape(rule.contains)
    return {"sourced_metadata": {"metadata_matcher": {
        "filter": "envoy.filters.http.jwt_authn",
        "path": [{"key": "jwt_payload"}, {"key": rule.claim}],
        "value": {"or_match": {"value_matchers": [
            {"list_match": {"one_of": {"string_match": {"exact": rule.contains}}}},
            {"string_match": {"safe_regex": {"regex": f"(^|.* ){word}( .*|$)"}}}]}}}}}


def _system_cells(named: list[str]) -> list[tuple[str, dict, str | None]]:
    """(name, permission, system) for each named system, any system (`*`), and every other request
    (system None: only the rules for all systems apply)."""
    if not named:
        return [("all systems", {"any": True}, None)]
    header = lambda value: {"header": {"name": SYSTEM_HEADER, "string_match": {"exact": value}}}  # noqa: E731
    cells = [(f"system {s}", header(s), s) for s in named]
    cells.append(("any system (native gRPC)", header(ANY_SYSTEM), ANY_SYSTEM))
    cells.append(("no or another system", {"not_rule": _any_of([header(s) for s in [*named, ANY_SYSTEM]],
                                                                 "or_rules")}, None))
    return cells


def _area_cells(named: list[str]) -> list[tuple[str, dict, str | None]]:
    if not named:
        return [("all areas", {"any": True}, None)]
    prefix = lambda area: {"url_path": {"path": {"prefix": f"/firecrest_mesh.{area}.v1."}}}  # noqa: E731
    cells = [(area, prefix(area), area) for area in named]
    cells.append(("other areas", {"not_rule": _any_of([prefix(a) for a in named], "or_rules")}, None))
    return cells


def _applies(selected: tuple[str, ...], cell: str | None) -> bool:
    """Whether a rule selecting `selected` (empty: all) applies in a cell (None: other; `*`: any)."""
    return not selected or cell == ANY_SYSTEM or (cell is not None and cell in selected)


def address_policies(p: GatewayPolicies) -> dict[str, dict] | None:
    """RBAC ALLOW policies of the IP filter (global, and per system), or None without any filter."""
    if not p.ip_filter and not p.system_ip_filters:
        return None
    policies = {}
    for name, permission, system in _system_cells(sorted(p.system_ip_filters)):
        ids = address_principal(p.ip_filter)
        for s, f in sorted(p.system_ip_filters.items()):
            if _applies((s,), system):
                ids += address_principal(f)
        policies[name] = {"permissions": [permission], "principals": [_all_of(ids, "and_ids")]}
    return policies


def claim_policies(p: GatewayPolicies) -> dict[str, dict] | None:
    """RBAC ALLOW policies of the access control lists, one per (area, system) cell, or None."""
    if not p.access_control:
        return None
    areas = sorted({a for r in p.access_control for a in r.areas})
    systems = sorted({s for r in p.access_control for s in r.systems})
    # The public routes (liveness, the API's description): jwt_authn requires no token there, so a
    # request that reached this filter without a verified payload is on one of them (any other route
    # answered 401 already). No claims to check.
    policies = {"public routes (no token)": {"permissions": [{"any": True}], "principals": [{"not_id": {
        "sourced_metadata": {"metadata_matcher": {"filter": "envoy.filters.http.jwt_authn",
                                                  "path": [{"key": "jwt_payload"}],
                                                  "value": {"present_match": True}}}}}]}}
    for area_name, area_permission, area in _area_cells(areas):
        for system_name, system_permission, system in _system_cells(systems):
            rules = [r for r in p.access_control
                     if (not r.areas or (area is not None and area in r.areas)) and _applies(r.systems, system)]
            permission = _all_of([x for x in (area_permission, system_permission) if x != {"any": True}],
                                 "and_rules")
            policies[f"{area_name}, {system_name}"] = {
                "permissions": [permission],
                "principals": [_all_of([claim_principal(r) for r in rules], "and_ids")]}
    return policies


# --- Rate limits --------------------------------------------------------------------------------------

def _bucket(b: TokenBucket) -> dict:
    return {"max_tokens": b.burst, "tokens_per_fill": b.per_second, "fill_interval": f"{RETRY_AFTER_SECONDS}s"}


def rate_descriptors(p: GatewayPolicies) -> list[dict]:
    """The local rate limit's descriptors: (class, user) and (class, remote_address), value-less user
    and address entries so that each user and address gets a bucket of its own."""
    out = []
    for name, c in p.rate_limits.items():
        if c.per_user:
            out.append({"entries": [{"key": "rate_class", "value": name}, {"key": "user"}],
                        "token_bucket": _bucket(c.per_user)})
        if c.per_address:
            out.append({"entries": [{"key": "rate_class", "value": name}, {"key": "remote_address"}],
                        "token_bucket": _bucket(c.per_address)})
    return out


def rate_actions(username_claim: str) -> list[dict]:
    """The descriptors each request makes: its route's class with its verified username (from the JWT
    payload, never a header) and with its client address."""
    rate_class = {"metadata": {"descriptor_key": "rate_class", "source": "ROUTE_ENTRY",
                               "default_value": DEFAULT_CLASS,
                               "metadata_key": {"key": RATE_METADATA[0], "path": [{"key": RATE_METADATA[1]}]}}}
    user = {"metadata": {"descriptor_key": "user", "source": "DYNAMIC",
                         "metadata_key": {"key": "envoy.filters.http.jwt_authn",
                                          "path": [{"key": "jwt_payload"}, {"key": username_claim}]}}}
    return [{"actions": [rate_class, user]}, {"actions": [rate_class, {"remote_address": {}}]}]


class _Dumper(yaml.SafeDumper):
    """YAML without anchors and aliases (a principal used in several policies is written out each time)."""

    def ignore_aliases(self, data) -> bool:
        return True


def _yaml(value) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120).rstrip("\n")


def template_values(p: GatewayPolicies, username_claim: str, files, routed: set[str]) -> dict:
    """What the templates need (`policies` in envoy.yaml.j2, `system_*` in firecrest.lua.j2)."""
    methods = [m for m in api_methods(files) if m.service in routed]
    descriptors = rate_descriptors(p)
    limited = {c for c, rc in p.rate_limits.items() if rc.per_user or rc.per_address}
    expensive = sorted({m.grpc_path: m.service for m in methods if is_expensive(m)}.items())
    address, claims = address_policies(p), claim_policies(p)
    return {
        "trusted_proxy_hops": p.trusted_proxy_hops,
        "address_rbac": _yaml(address) if address else None,
        "claim_rbac": _yaml(claims) if claims else None,
        "rate_limits": {"descriptors": _yaml(descriptors), "actions": _yaml(rate_actions(username_claim)),
                        "max_dynamic_descriptors": MAX_DYNAMIC_DESCRIPTORS, "retry_after": RETRY_AFTER_SECONDS,
                        "metadata": RATE_METADATA}
        if descriptors else None,
        # Own routes for the expensive calls only when their class has a budget.
        "expensive_routes": [{"path": path, "cluster": cluster} for path, cluster in expensive]
        if EXPENSIVE_CLASS in limited else [],
        "per_system": p.per_system,
        "system_header": SYSTEM_HEADER,
        "any_system": ANY_SYSTEM,
        "system_routes": system_routes_by_area(methods),
        "system_methods": sorted({m.grpc_path for m in methods if system_route_pattern(m.template)}),
    }
