"""Access rules of an experience (SPEC §5 ``access_rules``): who may sign in to an application.

Six lists, each empty by default (no rule): allowed and denied e-mail domains, IP ranges (CIDRs,
IPv4 and IPv6) and regions (ISO 3166-1 alpha-2 codes from the proxy's header). A deny list refuses
what it names; a non-empty allow list refuses everything it does not name. :func:`decide` says which
rule refuses (the first in the order e-mail domain, IP, region) and why; it is the one copy of the
rules, for the pages, the APIs, token issuance and the admin's simulator alike.

- **E-mail domains** match the address's domain exactly; ``*.example.com`` matches its subdomains
  (not ``example.com`` itself: list both for both). Names are compared in lower case, IDNA-encoded.
  An account without an e-mail address is refused by a non-empty allow list.
- **IP ranges** match the client address (``ip_allow`` non-empty: an unknown address is refused).
- **Regions** match the region the proxy names; with a non-empty allow list an unknown region is
  refused. ``XX`` (unknown) and ``T1`` (Tor), as Cloudflare sends them, may be listed too.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LIST_KEYS = ("email_domains_allow", "email_domains_deny", "ip_allow", "ip_deny", "regions_allow", "regions_deny")
MAX_ENTRIES = 1000

# ISO 3166-1 alpha-2, the officially assigned codes, and Cloudflare's XX (unknown) and T1 (Tor).
REGIONS = frozenset("""
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN
IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE
YT ZA ZM ZW XX T1
""".split())

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def domain_problem(value: Any) -> str | None:
    """Why ``value`` is no e-mail domain rule (``example.com`` or ``*.example.com``)."""
    if not isinstance(value, str):
        return "must be a domain name such as example.com"
    name = value[2:] if value.startswith("*.") else value
    if name != name.lower():
        return f"must be written in lower case ({json_string(value.lower())})"
    try:
        ascii_name = name.encode("idna").decode("ascii") if name else ""
    except UnicodeError:
        ascii_name = ""
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "must be a domain name such as example.com (or *.example.com for its subdomains)"
    return None


def network_problem(value: Any) -> str | None:
    """Why ``value`` is no IP range (a CIDR such as ``203.0.113.0/24`` or ``2001:db8::/32``, or one address)."""
    if not isinstance(value, str):
        return "must be a CIDR such as 203.0.113.0/24 or 2001:db8::/32"
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        if "has host bits set" in str(error):
            loose = ipaddress.ip_network(value, strict=False)
            return f"has host bits set: did you mean {loose}?"
        return "must be a CIDR such as 203.0.113.0/24 or 2001:db8::/32"
    return None


def region_problem(value: Any) -> str | None:
    if isinstance(value, str) and value in REGIONS:
        return None
    if isinstance(value, str) and value.upper() in REGIONS:
        return f"must be written in upper case ({json_string(value.upper())})"
    return "must be an ISO 3166-1 alpha-2 region code such as DE or US"


PROBLEMS = {"email_domains_allow": domain_problem, "email_domains_deny": domain_problem,
            "ip_allow": network_problem, "ip_deny": network_problem,
            "regions_allow": region_problem, "regions_deny": region_problem}


def json_string(value: str) -> str:
    import json

    return json.dumps(value)


@dataclass(frozen=True)
class AccessRules:
    email_domains_allow: tuple[str, ...] = ()
    email_domains_deny: tuple[str, ...] = ()
    ip_allow: tuple[str, ...] = ()
    ip_deny: tuple[str, ...] = ()
    regions_allow: tuple[str, ...] = ()
    regions_deny: tuple[str, ...] = ()

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> AccessRules:
        return cls(**{key: tuple(document.get(key) or ()) for key in LIST_KEYS})

    def __bool__(self) -> bool:
        return any(getattr(self, key) for key in LIST_KEYS)

    # Parsed once per rules object: a policy (and its rules) is remembered per process, and these are
    # asked at every sign-in step and token request.
    @cached_property
    def networks(self) -> dict[str, tuple[tuple[str, IPNetwork], ...]]:
        return {key: tuple((network, ipaddress.ip_network(network, strict=False)) for network in getattr(self, key))
                for key in ("ip_allow", "ip_deny")}


@dataclass(frozen=True)
class Decision:
    """What the rules say: ``allowed``, else the ``code`` (SPEC §5's ``email_domain_denied``,
    ``ip_denied``, ``region_denied``), the ``rule`` list that decided and the ``reason`` in words."""

    allowed: bool
    code: str = ""
    rule: str = ""
    reason: str = ""


ALLOWED = Decision(True)


def domain_of(email: str) -> str:
    domain = email.rpartition("@")[2].strip().rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def _domain_matches(domain: str, rule: str) -> bool:
    if rule.startswith("*."):
        return domain.endswith("." + domain_of("@" + rule[2:]))
    return domain == domain_of("@" + rule)


def _in(address: ipaddress.IPv4Address | ipaddress.IPv6Address,
        networks: tuple[tuple[str, IPNetwork], ...]) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, parsed in networks:
        if address.version == parsed.version and address in parsed:
            return network
    return None


def check_email(rules: AccessRules, email: str) -> Decision:
    domain = domain_of(email) if email else ""
    denied = next((rule for rule in rules.email_domains_deny if domain and _domain_matches(domain, rule)), None)
    if denied is not None:
        return Decision(False, "email_domain_denied", "email_domains_deny", f"the domain {domain} matches {denied}")
    if rules.email_domains_allow and not (domain and any(_domain_matches(domain, r) for r in rules.email_domains_allow)):
        return Decision(False, "email_domain_denied", "email_domains_allow",
                        f"the domain {domain} is not allowed" if domain else "the account has no e-mail address")
    return ALLOWED


def check_ip(rules: AccessRules, ip: str | None) -> Decision:
    try:
        address = ipaddress.ip_address(ip) if ip else None
    except ValueError:
        address = None
    if address is not None and (denied := _in(address, rules.networks["ip_deny"])) is not None:
        return Decision(False, "ip_denied", "ip_deny", f"the address {address} is in {denied}")
    if rules.ip_allow and (address is None or _in(address, rules.networks["ip_allow"]) is None):
        return Decision(False, "ip_denied", "ip_allow",
                        f"the address {address} is outside the allowed ranges" if address else "the address is unknown")
    return ALLOWED


def check_region(rules: AccessRules, region: str | None) -> Decision:
    code = (region or "").strip().upper()
    if code and code in rules.regions_deny:
        return Decision(False, "region_denied", "regions_deny", f"the region {code} is denied")
    if rules.regions_allow and code not in rules.regions_allow:
        return Decision(False, "region_denied", "regions_allow",
                        f"the region {code} is not allowed" if code else "the region is unknown")
    return ALLOWED


def decide(rules: AccessRules, *, email: str | None = None, ip: str | None = None,
           region: str | None = None, check_device: bool = True) -> Decision:
    """Which rule refuses (e-mail domain, then IP, then region), or :data:`ALLOWED`. ``email`` None
    skips the e-mail rules (nobody identified yet); ``check_device`` False skips IP and region (a
    token refresh: the caller is the application's server, not the user's device)."""
    if email is not None and not (decision := check_email(rules, email)).allowed:
        return decision
    if check_device:
        if not (decision := check_ip(rules, ip)).allowed:
            return decision
        if not (decision := check_region(rules, region)).allowed:
            return decision
    return ALLOWED
