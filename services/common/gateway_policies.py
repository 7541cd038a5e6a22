"""The gateway's policies in the configuration: rate limits, IP filtering and access control lists.

Parsed from `gateway:` in the project configuration by `services.common.config` (which calls
`parse_policies()` once the systems and services are known) and turned into Envoy configuration by
`gateway/policies.py`. Only the gateway enforces them; the services never read them.

    gateway:
      trusted_proxy_hops: 0      # load balancers in front of Envoy that append to X-Forwarded-For
      rate_limits:               # per gateway replica (Envoy's local rate limit)
        expensive: {per_user: {per_second: 10, burst: 20}, per_address: {per_second: 50, burst: 100}}
        default: {per_user: null, per_address: null}   # every other call; null: unlimited
      ip_filter: {allow: [10.0.0.0/8], deny: [10.6.6.0/24], systems: {daint: {allow: [10.1.0.0/16]}}}
      access_control:            # every rule that applies to a request must hold
        - {claim: groups, contains: hpc, areas: [compute], systems: [daint]}

An empty `allow` list allows every address; `deny` wins over `allow`. An access rule applies to a
request of one of its `areas` (services: status, compute, utilities, storage, tasks; omitted: all)
and `systems` (omitted: all); it holds when the token's `claim` contains `contains` (a list claim
holds the value, or a space-separated string claim such as `scope` has it as a word).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

# The classes of calls with a budget of their own: `expensive` (job submissions and transfers; which
# routes those are is decided by gateway/policies.py from the API's REST rules) and `default`.
RATE_CLASSES = ("expensive", "default")
CLAIM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_:-]{0,63}$")
MAX_PROXY_HOPS = 10


class PolicyError(ValueError):
    """A bad policy value; config.py reports it as a ConfigError naming the key."""


@dataclass(frozen=True)
class TokenBucket:
    """`per_second` requests per second on average, up to `burst` at once (Envoy: a bucket of `burst`
    tokens refilled with `per_second` tokens every second)."""
    per_second: int
    burst: int


@dataclass(frozen=True)
class RateClass:
    """The budgets of one class of calls: per verified user and per client address (None: unlimited)."""
    per_user: TokenBucket | None = None
    per_address: TokenBucket | None = None


@dataclass(frozen=True)
class IpFilter:
    """CIDR lists: an address must be in `allow` (when not empty) and not in `deny`."""
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.allow or self.deny)


@dataclass(frozen=True)
class AccessRule:
    """The token's `claim` must contain `contains`, for calls of `areas` on `systems` (empty: all)."""
    claim: str
    contains: str
    areas: tuple[str, ...] = ()
    systems: tuple[str, ...] = ()


@dataclass(frozen=True)
class GatewayPolicies:
    trusted_proxy_hops: int = 0
    rate_limits: dict[str, RateClass] = field(default_factory=lambda: {c: RateClass() for c in RATE_CLASSES})
    ip_filter: IpFilter = IpFilter()
    system_ip_filters: dict[str, IpFilter] = field(default_factory=dict)
    access_control: tuple[AccessRule, ...] = ()

    @property
    def per_system(self) -> bool:
        """Whether any policy names a system (the gateway then reads the system from REST paths)."""
        return bool(self.system_ip_filters) or any(r.systems for r in self.access_control)


def _mapping(value: Any, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PolicyError(f"{key}: expected a mapping, got {value!r}")
    return value


def _names(value: Any, key: str, allowed: set[str], what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{key}: expected a non-empty list of {what}, got {value!r}")
    names = []
    for name in value:
        name = str(name).lower() if isinstance(name, str) else name
        if name not in allowed:
            raise PolicyError(f"{key}: {name!r} is not one of the configured {what} ({', '.join(sorted(allowed))})")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _bucket(value: Any, key: str) -> TokenBucket | None:
    if value is None:
        return None
    data = _mapping(value, key)
    unknown = set(data) - {"per_second", "burst"}
    if unknown:
        raise PolicyError(f"{key}: unknown keys {sorted(unknown)} (per_second, burst)")
    numbers = {}
    for name in ("per_second", "burst"):
        number = data.get(name)
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            raise PolicyError(f"{key}.{name}: expected a positive integer, got {number!r}")
        numbers[name] = number
    if numbers["burst"] < numbers["per_second"]:
        raise PolicyError(f"{key}.burst: at least per_second ({numbers['per_second']})")
    return TokenBucket(numbers["per_second"], numbers["burst"])


def _rate_limits(value: Any, key: str) -> dict[str, RateClass]:
    data = _mapping(value, key)
    unknown = set(data) - set(RATE_CLASSES)
    if unknown:
        raise PolicyError(f"{key}: unknown classes {sorted(unknown)} ({', '.join(RATE_CLASSES)})")
    classes = {}
    for name in RATE_CLASSES:
        c = _mapping(data.get(name), f"{key}.{name}")
        if set(c) - {"per_user", "per_address"}:
            raise PolicyError(f"{key}.{name}: unknown keys {sorted(set(c) - {'per_user', 'per_address'})}")
        classes[name] = RateClass(_bucket(c.get("per_user"), f"{key}.{name}.per_user"),
                                  _bucket(c.get("per_address"), f"{key}.{name}.per_address"))
    return classes


def _cidrs(value: Any, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(f"{key}: expected a list of CIDRs, got {value!r}")
    networks = []
    for item in value:
        try:
            networks.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError as exc:
            raise PolicyError(f"{key}: {exc}") from None
    return tuple(dict.fromkeys(networks))


def _ip_filter(value: Any, key: str) -> IpFilter:
    data = _mapping(value, key)
    return IpFilter(_cidrs(data.get("allow"), f"{key}.allow"), _cidrs(data.get("deny"), f"{key}.deny"))


def _access_rule(value: Any, key: str, systems: set[str], areas: set[str]) -> AccessRule:
    data = _mapping(value, key)
    unknown = set(data) - {"claim", "contains", "areas", "systems"}
    if unknown:
        raise PolicyError(f"{key}: unknown keys {sorted(unknown)} (claim, contains, areas, systems)")
    claim, contains = data.get("claim"), data.get("contains")
    if not isinstance(claim, str) or not CLAIM_RE.match(claim):
        raise PolicyError(f"{key}.claim: expected a claim name, got {claim!r}")
    if not isinstance(contains, str) or not contains or any(c.isspace() or ord(c) < 32 for c in contains):
        raise PolicyError(f"{key}.contains: expected a non-empty value without spaces, got {contains!r}")
    return AccessRule(claim, contains, _names(data.get("areas"), f"{key}.areas", areas, "API areas"),
                      _names(data.get("systems"), f"{key}.systems", systems, "systems"))


def parse_policies(gateway: dict, systems: set[str], areas: set[str]) -> GatewayPolicies:
    """The policies of the `gateway:` mapping; `systems` and `areas` (routed services) are the names
    rules may use. Raises PolicyError naming the key."""
    hops = gateway.get("trusted_proxy_hops", 0)
    if isinstance(hops, bool) or not isinstance(hops, int) or not 0 <= hops <= MAX_PROXY_HOPS:
        raise PolicyError(f"gateway.trusted_proxy_hops: expected an integer in [0, {MAX_PROXY_HOPS}], got {hops!r}")
    ip = _mapping(gateway.get("ip_filter"), "gateway.ip_filter")
    if set(ip) - {"allow", "deny", "systems"}:
        raise PolicyError(f"gateway.ip_filter: unknown keys {sorted(set(ip) - {'allow', 'deny', 'systems'})}")
    per_system = {}
    for name, value in _mapping(ip.get("systems"), "gateway.ip_filter.systems").items():
        (system,) = _names([name], "gateway.ip_filter.systems", systems, "systems")
        if f := _ip_filter(value, f"gateway.ip_filter.systems.{name}"):
            per_system[system] = f
    rules = gateway.get("access_control") or []
    if not isinstance(rules, list):
        raise PolicyError(f"gateway.access_control: expected a list of rules, got {rules!r}")
    return GatewayPolicies(
        trusted_proxy_hops=hops,
        rate_limits=_rate_limits(gateway.get("rate_limits"), "gateway.rate_limits"),
        ip_filter=_ip_filter(ip, "gateway.ip_filter"),
        system_ip_filters=per_system,
        access_control=tuple(_access_rule(r, f"gateway.access_control[{i}]", systems, areas)
                             for i, r in enumerate(rules)))
