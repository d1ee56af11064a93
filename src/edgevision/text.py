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
