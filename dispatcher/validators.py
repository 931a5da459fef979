"""Field-level checks of a webhook definition, each with a message an admin understands."""
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES

NAME_RE = re.compile(r"^[\w\- ]+$")
PARAMETER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")


def validate_webhook_name(value: str) -> None:
    if not NAME_RE.match(value) or not value.strip():
        raise ValidationError(
            "Use letters, digits, spaces, hyphens and underscores only in the name.", code="invalid_name"
        )


def validate_parameter_name(value: str) -> None:
    if not PARAMETER_NAME_RE.match(value):
        raise ValidationError(
            f"“{value}” is not a valid parameter name: start with a letter or underscore, then use letters, "
            "digits, underscores and hyphens; dots separate nested names (customer.name).",
            code="invalid_parameter_name",
        )


# IPv6 forms that carry an IPv4 address and that Python still calls global: IPv4-compatible (::a.b.c.d,
# deprecated by RFC 4291) and IPv4-translated (::ffff:0:a.b.c.d, RFC 2765). No public receiver uses them.
EMBEDDED_IPV4_RANGES = (ipaddress.ip_network("::/96"), ipaddress.ip_network("::ffff:0:0:0/96"))


HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # an RFC 9110 token
# Headers a webhook may not set: the connection's own (hop-by-hop), the ones the client computes, and ours.
RESERVED_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "host", "content-length", "webhook-id", "webhook-timestamp",
    "webhook-signature",
})
HEADER_VALUE_FORBIDDEN_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # CR, LF and other controls (tab is allowed)


def validate_header_name(value: str) -> None:
    if not HEADER_NAME_RE.match(value):
        raise ValidationError(f"“{value}” is not a valid header name: use letters, digits and - (e.g. X-Api-Key).")
    if value.lower() in RESERVED_HEADERS:
        raise ValidationError(f"The header {value} is set by the connection or by the signature and cannot be "
                              "configured.")


def validate_header_value(value: str) -> None:
    if HEADER_VALUE_FORBIDDEN_RE.search(value):
        raise ValidationError("A header value cannot contain line breaks or other control characters.")


def port_allowed(port: int) -> bool:
    return settings.WEBHOOK_ALLOW_ANY_PORT or port in settings.WEBHOOK_ALLOWED_PORTS


def validate_webhook_url(value: str) -> None:
    """Refuse what can never be sent: other schemes, credentials in the URL, disallowed ports, private IPs.

    Host names are checked again when sending, against the address they resolve to then.
    """
    if any(char.isspace() for char in value):
        raise ValidationError("The URL must not contain spaces; encode them as %20.", code="invalid_url")
    if any(ord(char) < 32 or ord(char) == 127 or 0xD800 <= ord(char) <= 0xDFFF for char in value):
        raise ValidationError("The URL must not contain control characters (such as NUL).", code="invalid_url")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValidationError("This is not a valid URL (check the port number).", code="invalid_url") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The URL must start with http:// or https://.", code="invalid_scheme")
    if not parts.hostname:
        raise ValidationError("The URL has no host name.", code="invalid_url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError(
            "Do not put a user name or password in the URL; use Basic authentication or a custom parameter.",
            code="credentials_in_url",
        )
    if parts.fragment:
        raise ValidationError("The URL must not contain a #fragment; it is never sent.", code="invalid_url")
    if "%" in parts.hostname:
        raise ValidationError("The host name must not contain “%” (an encoded character or an IPv6 zone).",
                              code="invalid_url")
    effective_port = port if port is not None else (443 if parts.scheme == "https" else 80)
    if effective_port == 0 or not port_allowed(effective_port):
        allowed = ", ".join(map(str, settings.WEBHOOK_ALLOWED_PORTS))
        raise ValidationError(
            f"Port {effective_port} is not allowed; webhooks may only use ports {allowed}.", code="port_not_allowed"
        )
    address = literal_address(parts.hostname)
    if address is not None and address_forbidden(address):
        raise ValidationError(
            f"The address {parts.hostname} is private, loopback, link-local or reserved; webhooks can only reach public "
            "addresses.",
            code="private_address",
        )


LEGACY_IPV4_RE = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host name spells directly, including the forms resolvers accept: 2130706433,
    0x7f.1, 0177.0.0.1."""
    host = host.removesuffix(".")  # "127.0.0.1." is the same address to a resolver
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if LEGACY_IPV4_RE.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def address_forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback and settings.WEBHOOK_ALLOW_LOOPBACK:
        return False
    # requests-hardened's extra ranges: NAT64, 6to4, CGNAT and others that can reach inside networks.
    return (not address.is_global or address.is_multicast or any(address in net for net in EXTRA_BLOCKED_NET_RANGES)
            or any(address in net for net in EMBEDDED_IPV4_RANGES))
