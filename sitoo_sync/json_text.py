"""JSON text with what no UTF-8 string can hold mended, so one cut emoji never stops a stream.

JSON's grammar allows a lone UTF-16 surrogate escape (`"\\ud83d"`: what a string cut in the
middle of an emoji becomes), and a server may send bytes that are not UTF-8. Python's
strings (and msgspec, which refuses both) cannot hold them. A page refused for that would be
asked again, and refused, on every tick: instead they become U+FFFD, as a lenient decoder
does, and the rest of the page reads as sent. So does a byte order mark before the JSON
(RFC 8259 lets a reader ignore it; some servers' frameworks write one): it is dropped.
"""

from __future__ import annotations

import re

#: A JSON escape: a UTF-16 surrogate pair (one character), a lone surrogate, or any other.
_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
    rb"|\\.",
    re.DOTALL,
)
_LONE = len(b"\\ud83d")  # only the lone surrogate alternative matches this many bytes
_REPLACEMENT = b"\\ufffd"
_BOM = "\ufeff"


def mended(content: bytes) -> bytes:
    """`content` with what no UTF-8 text can hold replaced by U+FFFD: bytes that are not
    UTF-8, and a lone surrogate escape; and without a leading byte order mark."""
    text = content.decode("utf-8", "replace").lstrip(_BOM).encode()
    return _ESCAPE.sub(lambda m: _REPLACEMENT if len(m[0]) == _LONE else m[0], text)
