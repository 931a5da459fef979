"""Field-level checks of a webhook definition, each with a message an admin understands."""
import ipaddress
import re
import socket
from urllib.parse import urlsplit

from django.conf import settings
import yarl
from django.core.exceptions import ValidationError

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

# Networks that relay or translate to other networks, inside ones included, or are never a receiver, and
# that Python's is_global lets through (some only in older CPython releases: python/cpython#113171). The
# list requests-hardened 1.3.0 keeps, vendored: the package was a dependency for this constant alone.
EXTRA_BLOCKED_NETWORKS = (
    ipaddress.ip_network("192.88.99.0/24"),  # 6to4 relay anycast: RFC 3068, deprecated by RFC 7526
    ipaddress.ip_network("100.64.0.0/10"),  # shared address space (carrier-grade NAT): RFC 6598
    ipaddress.ip_network("5f00::/16"),  # segment routing (SRv6) SIDs: RFC 9602
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 well-known prefix, IPv4 translated: RFC 6052
    ipaddress.ip_network("2001:20::/28"),  # ORCHIDv2 overlay identifiers: RFC 7343
    ipaddress.ip_network("192.0.0.0/24"),  # IETF protocol assignments: RFC 6890
    ipaddress.ip_network("64:ff9b:1::/48"),  # local-use IPv4/IPv6 translation: RFC 8215
    ipaddress.ip_network("2002::/16"),  # 6to4, an IPv4 address inside: RFC 3056
    ipaddress.ip_network("3fff::/20"),  # documentation: RFC 9637
)


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


def url_parse(value: str) -> yarl.URL:
    """The URL as the guarded client will really use it, or a ValidationError saying why it cannot be.

    yarl is aiohttp's own URL library: it applies IDNA to the host, so full-width or circled digits and
    ideographic full stops (``http://１２７．０．０．１/``) become the ASCII address they spell, lower-cases
    scheme and host and drops a default port. Every address rule is judged on this form, never on the
    spelling, and it is the form stored and shown (url_normalise)."""
    if any(char.isspace() for char in value):
        raise ValidationError("The URL must not contain spaces; encode them as %20.", code="invalid_url")
    if any(ord(char) < 32 or ord(char) == 127 or 0xD800 <= ord(char) <= 0xDFFF for char in value):
        raise ValidationError("The URL must not contain control characters (such as NUL).", code="invalid_url")
    try:
        url = yarl.URL(value)
        url.port  # noqa: B018 - parses the port: out of range or not a number raises here
    except (ValueError, TypeError) as error:  # UnicodeError (a host IDNA refuses) is a ValueError
        part = "port number" if "port" in str(error).lower() else "host name"
        raise ValidationError(f"This is not a valid URL (check the {part}).", code="invalid_url") from None
    return url


def url_normalise(value: str) -> str:
    """The normalised form of a URL (see url_parse); a value that is no URL at all is returned unchanged,
    for validate_webhook_url to refuse with its message."""
    try:
        return str(url_parse(value))
    except ValidationError:
        return value


def validate_webhook_url(value: str) -> None:
    """Refuse what can never be sent: other schemes, credentials in the URL, disallowed ports, private IPs,
    judged on the normalised URL (url_parse), the one the client connects to.

    Host names are checked again when sending, against the address they resolve to then, and the
    address of every socket is checked once more when it connects (async_client).
    """
    url = url_parse(value)
    if url.scheme not in ("http", "https"):
        raise ValidationError("The URL must start with http:// or https://.", code="invalid_scheme")
    host = url.raw_host
    if not host:
        raise ValidationError("The URL has no host name.", code="invalid_url")
    if url.raw_user is not None or url.raw_password is not None:
        raise ValidationError(
            "Do not put a user name or password in the URL; use Basic authentication or a custom parameter.",
            code="credentials_in_url",
        )
    if url.raw_fragment or "#" in value:
        raise ValidationError("The URL must not contain a #fragment; it is never sent.", code="invalid_url")
    if "%" in host:
        raise ValidationError("The host name must not contain “%” (an encoded character or an IPv6 zone).",
                              code="invalid_url")
    port = url.port or 0
    if port == 0 or not port_allowed(port):
        allowed = ", ".join(map(str, settings.WEBHOOK_ALLOWED_PORTS))
        raise ValidationError(
            f"Port {port} is not allowed; webhooks may only use ports {allowed}.", code="port_not_allowed"
        )
    address = literal_address(host)
    if address is not None and address_forbidden(address):
        spelled = "" if literal_address(url_host_as_typed(value)) == address \
            else " (what the URL's host reads as once normalised)"
        raise ValidationError(
            f"The address {address_display(address)}{spelled} is private, loopback, link-local or reserved; webhooks can only "
            "reach public addresses.",
            code="private_address",
        )


def address_display(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An IPv4-mapped IPv6 address with its IPv4 part readable (::ffff:192.168.0.1, not ::ffff:c0a8:1)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def url_host_as_typed(value: str) -> str:
    try:
        return (urlsplit(value).hostname or "").lower()
    except ValueError:
        return ""


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
    return (not address.is_global or address.is_multicast or any(address in net for net in EXTRA_BLOCKED_NETWORKS)
            or any(address in net for net in EMBEDDED_IPV4_RANGES))
