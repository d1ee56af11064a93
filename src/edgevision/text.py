"""Plain-text formatting shared by the command line and the reports."""
from __future__ import annotations


def table(rows: list[list[str]], header: list[str], right: set[int] = frozenset()) -> str:
    """A fixed-width text table; columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]

    def line(r):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def millions(n: float) -> str:
    """A count in millions, e.g. 5.48M."""
    return f"{n / 1e6:.2f}M"


def macs(n: float) -> str:
    """Multiply-accumulates with a unit that keeps 3-4 significant digits: 56.4M, 4.49G."""
    if n >= 1e9:
        return f"{n / 1e9:.2f}G"
    return f"{n / 1e6:.1f}M"


# characters people type for one another: the letter o for zero, l or i for one, - for _
_LOOKALIKE = str.maketrans({"o": "0", "l": "1", "i": "1", "-": "_", " ": "_", ".": "_"})


def suggest(word: str, choices, n: int = 5, cutoff: float = 0.5) -> list[str]:
    """The ``choices`` closest to ``word``, best first: similarity after mapping look-alike
    characters (efficientnet_bo -> efficientnet_b0), then plain similarity, then name."""
    from difflib import SequenceMatcher
    w = word.lower()
    wn = w.translate(_LOOKALIKE)
    scored = []
    for c in choices:
        plain = SequenceMatcher(None, w, c.lower()).ratio()
        alike = SequenceMatcher(None, wn, c.lower().translate(_LOOKALIKE)).ratio()
        if max(plain, alike) >= cutoff:
            scored.append((-alike, -plain, c))
    return [c for _, _, c in sorted(scored)[:n]]


def did_you_mean(word: str, choices, n: int = 5) -> str:
    """" Did you mean: a, b?" (empty when nothing is close)."""
    close = suggest(word, choices, n)
    return f" Did you mean: {', '.join(close)}?" if close else ""
