"""QR images of codes (segno): used by the admin's code lookup page and the public API."""

from __future__ import annotations

import io

import segno

from loyalty.kernel import is_whole_number

# Medium error correction survives a crease or a smudge on a printed voucher.
ERROR_LEVEL = "m"
MAX_SCALE = 40


def _qr(text: str) -> segno.QRCode:
    if not isinstance(text, str) or not text:
        raise ValueError("A QR code needs some text.")
    return segno.make(text, error=ERROR_LEVEL, micro=False)


def qr_svg(text: str, *, scale: int = 4) -> bytes:
    """A standalone SVG document (no XML declaration), black on white, with a quiet zone."""
    out = io.BytesIO()
    _qr(text).save(out, kind="svg", scale=scale, border=4, xmldecl=False, light="#fff", title=text)
    return out.getvalue()


def qr_png(text: str, scale: int = 6) -> bytes:
    """A PNG image; ``scale`` is the size of one module in pixels (1 to 40)."""
    if not is_whole_number(scale, 1, MAX_SCALE):
        raise ValueError(f"scale must be between 1 and {MAX_SCALE}.")
    out = io.BytesIO()
    _qr(text).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()
