"""Raw rows in and out of the CLI: CSV or JSON lines, checked fast before any model runs.

The input format below is written in Markdown, to be pasted into the README as is.

## Raw input rows (`lstmops predict`, `lstmops observe`)

One row per sequence, as CSV with a header line or as JSON lines (one object per line).
The format follows the file name (`.csv`; `.jsonl`, `.ndjson`, `.json`), else the
content (a first character `{` means JSON lines); `--format` overrides both, and `-`
reads standard input. Columns are the problem's raw input columns plus an optional `id`
(text, unique; one is generated when absent), which `observe` uses to find the
prediction again. The true target columns may be present too, so that one
`lstmops sample --with-targets` file feeds both `predict` (which ignores them) and
`observe`; any other column is an error. Lengths and ranges are those of the model's
own fitted settings; the table shows the reference ones.

| problem | input columns (`predict`) | target columns (`observe`) |
|---|---|---|
| echo | `x_0`..`x_4`: integers 0..9 | `target`: the integer at `x_2` |
| damped_sine | `x_0`..`x_49`: floats in [0, 1] | `y_0`..`y_4`: the next 5 values |
| moving_square | `r_0`..`r_49`, `c_0`..`c_49`: the pixel (row, column) that frame t adds; the `c_*` light every column once | `direction`: 1 right, 0 left |
| addition | `expression`: 3 whole numbers up to 10 joined by `+`, e.g. `10+2+7` | `answer`: the sum |
| cumulative_sum | `x_0`..`x_9`: floats in [0, 1] | `y_0`..`y_9`: 0 or 1 per step |
| rectangles | none: one row (an `id` or nothing) per shape to draw, or `--n N` without a file | none: drawings are scored by themselves (geometric error) |

`observe` also takes an optional `observed_at` (ISO date/time, UTC when no zone is
given; default: now). Examples, with what `lstmops predict` prints for them (long
sequences shortened here with `…`):

```
$ cat echo.csv                          $ lstmops predict echo -i echo.csv
id,x_0,x_1,x_2,x_3,x_4                  a1  3 1 7 0 2 → 7
a1,3,1,7,0,2

$ cat waves.csv                         $ lstmops predict damped_sine -i waves.csv
id,x_0,x_1,…,x_49                       w1  0.500 0.650 0.781 … 0.512 0.489 0.470 → 0.458 0.452 0.453 0.460 0.471
w1,0.5,0.65,…,0.47

$ cat lines.csv                         $ lstmops predict moving_square -i lines.csv
id,r_0,…,r_49,c_0,…,c_49                v1  line (17, 0) … (30, 49) → right
v1,17,…,30,0,…,49

$ cat sums.jsonl                        $ lstmops predict addition -i sums.jsonl
{"id": "s1", "expression": "10+2+7"}    s1  10+2+7 → 19

$ cat steps.jsonl                       $ lstmops predict cumulative_sum -i steps.jsonl
{"id": "c1", "x_0": 0.92, …, "x_9": 0.05}   c1  0.92 0.14 0.77 … 0.05 → 0 0 1 1 1 1 1 1 1 1

$ lstmops predict rectangles --n 1      9f2c41d07a3b5e18  (0.00, 0.00) (0.61, 0.00) (0.61, 0.34) (0.00, 0.34)

$ cat truth.csv                         $ lstmops observe echo -i truth.csv
id,target                               echo: 1 observation(s) recorded
a1,7
```

Bad input stops the whole batch before anything is predicted or logged, with one line
naming the problem and the data row, counted from 1 (the CSV header is not a row), and
exit status 2, e.g. `lstmops predict: error: echo row 3 (id a3): column x_2 is 12, outside [0, 9]`.
An integer too large for the model (any number of digits) is such an error too, never an overflow.
Results are delivered first and logged after: if the output cannot be written (`-o` into a
missing folder, a full disk, a closed pipe), the error names the path, nothing is logged, and
the same ids can be predicted again.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from lstmops.errors import InputError

FORMATS = ("csv", "jsonl")
_EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_NOT_A_VALUE = {"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
_FAMILY = re.compile(r"^([a-z])_(\d+)$")
_EXACT_INT = 2.0**53  # the largest integer a float64 holds exactly; beyond it an int column would be silently wrong


def format_of(source: str | Path, text: str, fmt: str | None = None) -> str:
    """``csv`` or ``jsonl``: as asked, else by file extension, else by the first character."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
        return fmt
    by_name = _EXTENSIONS.get(Path(str(source)).suffix.lower())
    if by_name:
        return by_name
    return "jsonl" if text.lstrip()[:1] == "{" else "csv"


def read_source(source: str | Path) -> str:
    """The text of a file, or of standard input for ``-``; an unreadable file is an :class:`InputError`."""
    if str(source) == "-":
        return sys.stdin.read()
    path = Path(source)
    if not path.is_file():
        raise InputError(f"no input file {path}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as err:
        raise InputError(f"cannot read input file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"input file {path} is not UTF-8 text (byte {err.start + 1})") from None


def _parse_csv(problem: str, text: str) -> pd.DataFrame:
    reader = csv.reader(io.StringIO(text))
    lines = [line for line in reader if line and any(cell.strip() for cell in line)]
    if not lines:
        raise InputError(problem, "the input holds no rows")
    header = [cell.strip() for cell in lines[0]]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise InputError(problem, f"the header names column {duplicated[0]} twice")
    for i, line in enumerate(lines[1:]):
        if len(line) != len(header):
            raise InputError(problem, f"{len(line)} values, but the header names {len(header)} columns", i)
    return pd.DataFrame(lines[1:], columns=header, dtype=object)


def _parse_jsonl(problem: str, text: str) -> pd.DataFrame:
    records = []
    for i, line in enumerate(raw for raw in text.splitlines() if raw.strip()):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(problem, f"not valid JSON ({err.msg} at character {err.pos + 1})", i) from None
        if not isinstance(record, dict):
            raise InputError(problem, f"expected a JSON object, got {type(record).__name__}", i)
        records.append(record)
    columns = list(dict.fromkeys(key for record in records for key in record))
    cells = [[record.get(column) for column in columns] for record in records]  # absent key -> None
    return pd.DataFrame(cells, columns=columns, dtype=object)


def parse_rows(problem: str, text: str, fmt: str) -> pd.DataFrame:
    """Raw cells as an object table: strings from CSV, JSON values from JSON lines; None = missing."""
    table = _parse_csv(problem, text) if fmt == "csv" else _parse_jsonl(problem, text)
    if len(table) == 0:
        raise InputError(problem, "the input holds no rows")
    return table


def read_rows(problem: str, source: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read raw rows from a file or ``-`` (standard input)."""
    text = read_source(source)
    return parse_rows(problem, text, format_of(source, text, fmt))


def _span(columns: list[str]) -> str:
    return columns[0] if len(columns) == 1 else f"{columns[0]}..{columns[-1]}"


def check_columns(problem: str, table: pd.DataFrame, required: list[str], optional: Sequence[str] = ()) -> None:
    """Every required column present, nothing unknown; a longer or shorter sequence is named as such."""
    present = [str(c) for c in table.columns]
    allowed = set(required) | set(optional)
    families = {m.group(1): [c for c in required if c.startswith(m.group(1) + "_")]
                for m in map(_FAMILY.match, required) if m}
    unknown = [c for c in present if c not in allowed]
    missing = [c for c in required if c not in present]
    for column in unknown + missing:
        match = _FAMILY.match(column)
        if match and match.group(1) in families:
            given = sorted((c for c in present if c.startswith(match.group(1) + "_") and _FAMILY.match(c)),
                           key=lambda c: int(c.split("_")[1]))
            expected = families[match.group(1)]
            if not given:
                raise InputError(problem, f"missing columns {_span(expected)} "
                                          f"(expected {', '.join(_short(required, optional))})")
            raise InputError(problem, f"wrong sequence length: the model takes {_span(expected)} "
                                      f"({len(expected)} steps), the input has {_span(given)} "
                                      f"({len(given)})")
    if unknown:
        raise InputError(problem, f"unknown column {unknown[0]} (expected {', '.join(_short(required, optional))})")
    if missing:
        raise InputError(problem, f"missing column {missing[0]} (expected {', '.join(_short(required, optional))})")


def _short(required: list[str], optional: Sequence[str]) -> list[str]:
    """Column names for a message, sequences shortened to ``x_0..x_49``."""
    out, seen = [], set()
    for column in [*optional[:1], *required]:
        match = _FAMILY.match(column)
        if match:
            if match.group(1) in seen:
                continue
            seen.add(match.group(1))
            out.append(_span([c for c in required if c.startswith(match.group(1) + "_")]))
        else:
            out.append(column)
    return out


def row_ids(problem: str, table: pd.DataFrame, generate: bool) -> list[str]:
    """The ``id`` column as text, checked non-empty and unique; generated ids when absent and allowed."""
    if "id" not in table.columns:
        if not generate:
            raise InputError(problem, "missing column id (the id of the prediction each row observes)")
        import uuid

        return [uuid.uuid4().hex[:16] for _ in range(len(table))]
    ids = ["" if v is None else str(v).strip() for v in table["id"].tolist()]
    for i, value in enumerate(ids):
        if not value:
            raise InputError(problem, "column id is empty", i)
        if len(value) > 128:
            raise InputError(problem, "column id is longer than 128 characters", i)
    seen: dict[str, int] = {}
    for i, value in enumerate(ids):
        if value in seen:
            raise InputError(problem, f"id {value} repeats row {seen[value] + 1}", i)
        seen[value] = i
    return ids


def _first(mask: np.ndarray) -> tuple[int, int] | None:
    hits = np.argwhere(mask)
    return (int(hits[0][0]), int(hits[0][1])) if len(hits) else None


def _range_text(lo: Any, hi: Any) -> str:
    if lo is not None and hi is not None:
        return f"outside [{lo}, {hi}]"
    return f"below {lo}" if lo is not None else f"above {hi}"


def _cell_text(value: Any) -> str:
    return "" if value is None else value.strip() if isinstance(value, str) else str(value)


def column_text(column: pd.Series) -> pd.Series:
    """Cells as stripped text ("" = missing); JSON numbers keep their exact repr."""
    if pd.api.types.infer_dtype(column, skipna=False) == "string":  # CSV: every cell already text
        return column.str.strip()
    return column.map(_cell_text)


def _parse_numbers(text: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, missing, not_number)`` of one text column; NaN/inf spellings count as numbers."""
    missing = (text == "").to_numpy()
    values = pd.to_numeric(text, errors="coerce").to_numpy(np.float64)
    not_number = np.isnan(values) & ~missing
    if not_number.any():  # rare: tell "nan" (a number, refused later) from "abc"
        not_number[not_number] = ~text[not_number].str.lower().isin(_NOT_A_VALUE).to_numpy()
    return values, missing, not_number


def _bounds(columns: list[str], ranges: dict[str, tuple], value_sets: dict[str, tuple]) -> tuple[list, list]:
    """Inclusive (low, high) per column; value sets of consecutive integers read as ranges."""
    lows, highs = [], []
    for column in columns:
        lo, hi = ranges.get(column, (None, None))
        if column in value_sets:
            allowed = sorted(value_sets[column])
            lo = allowed[0] if lo is None else max(lo, allowed[0])
            hi = allowed[-1] if hi is None else min(hi, allowed[-1])
        lows.append(lo)
        highs.append(hi)
    return lows, highs


def typed_numbers(problem: str, table: pd.DataFrame, kinds: dict[str, str], ranges: dict[str, tuple],
                  value_sets: dict[str, tuple], ids: Sequence[str] | None = None) -> pd.DataFrame:
    """Numeric columns parsed and checked: present, numbers, finite, integral where ``int``, in range or set.

    Raises :class:`InputError` for the first offending row (then the first column in it).
    """
    columns = list(kinds)
    texts = [column_text(table[c]) for c in columns]
    parsed = [_parse_numbers(t) for t in texts]
    values = np.column_stack([p[0] for p in parsed])
    missing = np.column_stack([p[1] for p in parsed])
    not_number = np.column_stack([p[2] for p in parsed])
    finite = np.isfinite(values)
    not_finite = ~finite & ~not_number & ~missing
    clean = np.where(finite, values, 0.0)
    integral = np.array([kinds[c] == "int" for c in columns])
    not_int = integral[None, :] & (clean != np.round(clean)) & finite
    lows, highs = _bounds(columns, ranges, value_sets)
    lo = np.array([-np.inf if v is None else float(v) for v in lows])
    hi = np.array([np.inf if v is None else float(v) for v in highs])
    outside = ((clean < lo) | (clean > hi)) & finite
    huge = integral[None, :] & (np.abs(clean) > _EXACT_INT) & finite & ~outside  # would wrap or round as int64
    checks = [(missing, "is missing"), (not_number, "is {v}, not a number"),
              (not_finite, "is {v}; NaN and inf are not allowed"), (not_int, "is {v}, not an integer"),
              (outside, "is {v}, {r}"), (huge, "is {v}, too large for an integer")]
    spots = [(spot, message) for mask, message in checks if (spot := _first(mask)) is not None]
    if spots:
        (row, col), message = min(spots, key=lambda s: s[0])
        shown = texts[col].iloc[row]
        raise InputError(problem, f"column {columns[col]} " + message.format(
            v=shown if not not_number[row, col] else repr(shown), r=_range_text(lows[col], highs[col])), row, ids)
    out = pd.DataFrame(values, columns=columns)
    for column in columns:
        if kinds[column] == "int":
            out[column] = out[column].astype(np.int64)
    return out


def typed_times(problem: str, table: pd.DataFrame, column: str, ids: Sequence[str] | None = None) -> list:
    """An optional date/time column as naive UTC datetimes (None where empty)."""
    values = ["" if v is None else str(v).strip() for v in table[column].tolist()]
    parsed = pd.to_datetime(pd.Series(values).replace("", None), errors="coerce", utc=True, format="ISO8601")
    for i, (given, when) in enumerate(zip(values, parsed)):
        if given and pd.isna(when):
            raise InputError(problem, f"column {column} is {given!r}, not an ISO date/time", i, ids)
    return [None if pd.isna(w) else w.tz_convert(None).to_pydatetime() for w in parsed]


def rows_text(rows: pd.DataFrame, fmt: str) -> str:
    """A table as CSV (with a header) or JSON lines."""
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if fmt == "csv":
        return rows.to_csv(index=False, lineterminator="\n")
    text = rows.to_json(orient="records", lines=True, double_precision=15)
    return text if text.endswith("\n") or not text else text + "\n"


def check_writable(destination: str | Path) -> None:
    """Refuse, before any work, an output path that cannot be written (a cheap check, not a guarantee)."""
    path = Path(destination)
    if path.is_dir():
        raise InputError(f"cannot write {path}: it is a folder")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: no folder {path.parent}")
    if not os.access(path if path.exists() else path.parent, os.W_OK):
        raise InputError(f"cannot write {path}: permission denied")


def write_text(text: str, destination: str | Path | None) -> None:
    """Write ``text`` whole to a file, or to standard output for None or ``-``.

    A file is written beside its destination and then renamed over it, so it is either
    complete or untouched; a failure is an :class:`InputError` naming the path.
    """
    if destination is None or str(destination) == "-":
        try:
            sys.stdout.write(text)
            sys.stdout.flush()
        except OSError as err:  # e.g. a closed pipe: the reader did not get everything
            raise InputError(f"cannot write to standard output: {err.strerror or err}") from None
        return
    path = Path(destination)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {err.strerror or err}") from None


def write_rows(rows: pd.DataFrame, destination: str | Path | None, fmt: str | None = None) -> None:
    """Write a table as CSV or JSON lines to a file, or to standard output for None or ``-``."""
    target = "-" if destination is None else str(destination)
    write_text(rows_text(rows, fmt or _EXTENSIONS.get(Path(target).suffix.lower(), "csv")), destination)
