"""The request as it is sent: method, URL, headers, body and the secret values in it, with the masking
that every display and stored excerpt of it goes through (rendering builds it; the transport sends it)."""
import base64
import functools
import html.entities
import json
import re
import string
from dataclasses import dataclass, field

from dispatcher.transport.signing import SIGNATURE_HEADER

MASK = "********"


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def masked(self, *, keep_signature: bool = False) -> "RenderedRequest":
        """The same request with its credentials and secret values replaced by a mask, for display. The
        signature is masked too unless asked for: a fresh one can be replayed for minutes, so only people who
        may change the webhook (and see its secret anyway) are shown it."""
        headers = {name: self.mask(value) for name, value in self.headers.items()}
        if "Authorization" in headers:
            headers["Authorization"] = headers["Authorization"].split(" ", 1)[0] + " " + MASK
        if not keep_signature and SIGNATURE_HEADER in headers:
            headers[SIGNATURE_HEADER] = " ".join(
                f"{part.split(',', 1)[0]},{MASK}" for part in headers[SIGNATURE_HEADER].split())
        return RenderedRequest(self.method, self.mask(self.url), headers,
                               self.mask(self.body.decode("utf-8", "replace")).encode())

    def mask(self, text: str) -> str:
        """text with this request's secrets masked, in every spelling they can take (``secret_pattern``),
        and the Basic credentials as sent (a receiver that echoes the request shows them)."""
        sent: tuple[str, ...] = ()
        if (authorization := self.headers.get("Authorization", "")).startswith("Basic "):
            sent = (authorization.split(" ", 1)[1],)
        pattern = secret_pattern(self.secrets, sent)
        return text if pattern is None else pattern.sub(MASK, text)

    def seal(self) -> str:
        """JSON of the whole request, secrets included: only ever stored encrypted."""
        return json.dumps({
            "method": self.method, "url": self.url, "headers": self.headers,
            "body": base64.b64encode(self.body).decode(), "secrets": list(self.secrets),
        })

    @classmethod
    def unseal(cls, text: str) -> "RenderedRequest":
        data = json.loads(text)
        return cls(data["method"], data["url"], data["headers"], base64.b64decode(data["body"]),
                   tuple(data["secrets"]))

    def as_text(self) -> str:
        lines = [f"{self.method} {self.url}", *(f"{name}: {value}" for name, value in self.headers.items())]
        return "\n".join(lines) + "\n\n" + self.body.decode("utf-8", "replace")


@functools.lru_cache(maxsize=1024)
def secret_pattern(secrets: tuple[str, ...], literal: tuple[str, ...] = ()) -> re.Pattern[str] | None:
    """One expression for every spelling in which the secrets come back from a receiver that echoes the
    request re-encoded, or in a log; each character may take any of its forms, so mixed spellings match too:

    - as typed, in any letter case (a receiver that upper-cases what it echoes);
    - JSON: \\u escapes in lower- or upper-case hex (surrogate pairs beyond the BMP), and \\" \\\\ \\/ \\n …;
    - HTML and XML: character references, decimal or hex, and named ones (&amp; &auml; &apos; …);
    - percent-encoded UTF-8 in either case, once or twice (%25 for the %), with + or %20 for a space;
    - base64 of the secret alone (standard and URL-safe, with or without padding);

    and the literal texts given (the Basic credentials as sent). None when there is nothing to mask. Kept per
    set of secrets: every attempt masks each response header and the body with it."""
    alternatives = [_spelled(secret) for secret in sorted(filter(None, set(secrets)), key=len, reverse=True)]
    alternatives += [re.escape(text) for text in sorted(filter(None, set(literal)), key=len, reverse=True)]
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


def _spelled(secret: str) -> str:
    spelled = "".join(_character(char) for char in secret)
    if len(upper := secret.upper()) != len(secret):  # "ß" upper-cased is "SS"
        spelled += "|" + "".join(_character(char) for char in upper)
    encoded = secret.encode("utf-8", "surrogatepass")
    for form in {base64.b64encode(encoded).decode(), base64.urlsafe_b64encode(encoded).decode()}:
        spelled += f"|{re.escape(form)}|{re.escape(form.rstrip('='))}"
    return spelled


def _character(char: str) -> str:
    """A group matching one character of a secret in each of its spellings (the longest tried first). Letters,
    digits and -_.~ are spelled as they are by every encoding (the case aside), which keeps the expression
    of a long token (a JWT) short."""
    if char in _UNRESERVED:
        return re.escape(char)
    forms = set()
    for variant in {char, char.lower(), char.upper()}:
        if len(variant) != 1:
            continue
        code = ord(variant)
        units = [code] if code <= 0xFFFF else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)]
        forms |= {re.escape(variant), "".join(rf"\\u{unit:04x}" for unit in units), f"&#0*{code};", f"&#x0*{code:x};",
                  "".join(f"%(?:25)?{byte:02x}" for byte in variant.encode("utf-8", "surrogatepass"))}
        forms |= {re.escape(f"&{name}") for name in _ENTITY_NAMES.get(variant, ())}
        if variant in _JSON_ESCAPES:
            forms.add(re.escape(_JSON_ESCAPES[variant]))
    if char == " ":
        forms |= {r"\+", "%(?:25)?2b"}  # form encoding's space, and that + percent-encoded
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-_.~")
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t"}


def _entity_names() -> dict[str, list[str]]:
    """Each character's named references in HTML 5 (&quot; and &QUOT;, &auml;, &apos; …)."""
    names: dict[str, list[str]] = {}
    for name, text in html.entities.html5.items():
        if name.endswith(";") and len(text) == 1:
            names.setdefault(text, []).append(name)
    return names


_ENTITY_NAMES = _entity_names()
