"""Lists and records for people: aligned columns in which no value is ever cut.

The layout is kubectl's: upper-case headings, columns two spaces apart, no borders (a
border character would end up in what a double-click selects). Each list has default
columns that fit 80 columns with typical values, and ``--wide`` adds the rest.

Values are never wrapped, cropped or ellipsised: ids, key ids and URLs are copied from
here. When a terminal is too narrow for the table, each row becomes a block of
``column  value`` lines instead. Output that goes to a pipe or a file is always the
table, with the same columns whatever the width, so that scripts see one shape.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import click
from rich.cells import cell_len

from bastion.cli.output import out_console, print_line

GAP = "  "


@dataclass(frozen=True)
class Column:
    heading: str
    wide_only: bool = False


def _pad(value: str, width: int) -> str:
    # cell_len, not len: a CJK user name takes two cells per character.
    return value + " " * (width - cell_len(value))


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(cell_len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [GAP.join(_pad(v, w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    """One record as ``name  value`` lines, the values aligned."""
    print_line("\n".join(_aligned(fields)))


def print_rows(
    columns: Sequence[Column], rows: Iterable[Sequence[str]], *, wide: bool, empty: str
) -> None:
    """A table of ``rows``; ``empty`` (on stderr, like kubectl's) when there are none."""
    listed = [tuple(row) for row in rows]
    if not listed:
        print_line(empty, err=True)
        return
    shown = [i for i, column in enumerate(columns) if wide or not column.wide_only]
    headings = [columns[i].heading for i in shown]
    cells = [[row[i] for i in shown] for row in listed]
    lines = _aligned([headings, *cells])
    narrow = out_console.is_terminal and max(map(cell_len, lines)) > out_console.width
    if narrow and not wide:
        names = [heading.lower() for heading in headings]
        blocks = ("\n".join(_aligned(list(zip(names, row, strict=True)))) for row in cells)
        print_line("\n\n".join(blocks))
        return
    print_line("\n".join(lines))


wide_option = click.option(
    "--wide", is_flag=True, help="Every column (by default some are left out to fit 80 columns)."
)
