"""The media ranges of an `Accept` header, as content negotiation reads them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MediaRange:
    media: str  # lower case, e.g. "application/json", "multipart/mixed", "*/*"
    params: dict[str, str]  # lower-case names, values unquoted; `q` taken out
    q: float
    position: int  # where it stands in the header: between equal `q`, the earlier one wins

    @property
    def rank(self) -> tuple[float, int]:
        """Larger is preferred: the highest `q`, then the earliest."""
        return self.q, -self.position


def media_ranges(accept: str) -> list[MediaRange]:
    """The ranges of `accept` a client will take (`q` above 0; an unreadable `q` counts as 0)."""
    ranges: list[MediaRange] = []
    for position, part in enumerate(accept.split(",")):
        media, *raw = (p.strip() for p in part.split(";"))
        params = {k.strip().lower(): v.strip().strip('"') for k, _, v in (p.partition("=") for p in raw)}
        try:
            q = float(params.pop("q", "1"))
        except ValueError:
            q = 0.0
        if q > 0:
            ranges.append(MediaRange(media.lower(), params, q, position))
    return ranges
