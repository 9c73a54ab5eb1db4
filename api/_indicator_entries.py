"""Indicator entries: what a person keys in or imports, turned into the value the score uses.

Pure functions (no database), so the rules the commission is evaluated by are testable alone:

* a ratio takes `numerator` and `denominator`, or a `value` in the plan's unit (percent for "%");
* a count takes `value` (or `count`), a yes/no indicator `value` 1/0 (or `achieved`);
* B7-1 takes its year's checklist (`components` = milestone key -> done), value = done / planned;
* B6-1 takes its three parts (`components` = part key -> times done), value = Σ min(done, planned) /
  Σ planned, so extra reports in one part cannot hide a missing training;
* M1-1 takes its two statutory quotas as counts (employed and required for each), value = 1 when
  both are met.

The CSV form (`CSV_COLUMNS`) is what Excel writes and reads: UTF-8 with or without a BOM, one row
per indicator and year, components as `key=value; key=value`.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CSV_COLUMNS: tuple[str, ...] = (
    "indicator_id",
    "year",
    "value",
    "numerator",
    "denominator",
    "components",
    "evidence",
    "note",
)
_REQUIRED_COLUMNS = {"indicator_id", "year"}
_TRUE = {"1", "yes", "true", "y", "是", "done", "v", "✓"}
_FALSE = {"0", "no", "false", "n", "否", "", "x"}
MAX_TEXT = 2000


class EntryError(ValueError):
    """An entry the indicator cannot take; the message says what it needs."""


@dataclass(frozen=True)
class Entry:
    """A validated entry, ready to store: value in the score's unit (fractions for ratios)."""

    indicator_id: str
    year: int
    value: float
    numerator: float | None = None
    denominator: float | None = None
    components: dict[str, float] | None = None
    evidence: str | None = None
    note: str | None = None
    corrects: int | None = None
    given: tuple[str, ...] = field(default=())  # which input fields were used, for the export


def structure(row: Mapping[str, Any]) -> str:
    """How an indicator is entered: checklist, parts, quota, ratio, count or boolean."""
    details = row.get("details") or {}
    if details.get("checklist"):
        return "checklist"
    components = details.get("components") or []
    if components and all("per_year" in c for c in components):
        return "parts"
    if components:
        return "quota"
    return str(row["kind"])


def checklist_for(row: Mapping[str, Any], year: int) -> list[dict[str, Any]]:
    """The year's milestones of a checklist indicator (empty for a year the plan does not cover)."""
    details = row.get("details") or {}
    return list((details.get("checklist") or {}).get(str(year)) or [])


def _finite(name: str, value: float, *, low: float = 0.0) -> float:
    if not math.isfinite(value) or value < low:
        raise EntryError(f"`{name}` must be a finite number ≥ {low:g}; got {value!r}")
    return value


def _text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise EntryError(f"`{name}` is longer than {MAX_TEXT} characters")
    return text or None


def make_entry(
    row: Mapping[str, Any],
    year: int,
    *,
    value: float | None = None,
    numerator: float | None = None,
    denominator: float | None = None,
    components: Mapping[str, float] | None = None,
    evidence: str | None = None,
    note: str | None = None,
    corrects: int | None = None,
) -> Entry:
    """Validate the fields against the indicator's structure; EntryError says what it needs."""
    indicator_id = str(row["indicator_id"])
    kind = structure(row)
    unit = str(row.get("unit") or "")
    given = tuple(
        name
        for name, v in (
            ("value", value),
            ("numerator", numerator),
            ("denominator", denominator),
            ("components", components),
        )
        if v is not None
    )
    evidence_, note_ = _text("evidence", evidence), _text("note", note)

    def made(value: float, **parts: Any) -> Entry:
        return Entry(
            indicator_id=indicator_id,
            year=year,
            value=value,
            evidence=evidence_,
            note=note_,
            corrects=corrects,
            given=given,
            **parts,
        )

    if kind == "checklist":
        milestones = checklist_for(row, year)
        if not milestones:
            raise EntryError(f"{indicator_id} has no milestone checklist for {year}")
        if set(given) != {"components"} or components is None:
            listed = ", ".join(m["key"] for m in milestones)
            raise EntryError(f"{indicator_id} takes its {year} checklist as `components` ({listed} = 1 or 0)")
        known = {m["key"] for m in milestones}
        unknown = sorted(set(components) - known)
        if unknown:
            raise EntryError(
                f"{indicator_id} {year} has no milestone {', '.join(unknown)}; known: {sorted(known)}"
            )
        ticked = {k: 1.0 if components.get(k) else 0.0 for k in sorted(known)}
        for key, flag in components.items():
            if float(flag) not in (0.0, 1.0):
                raise EntryError(f"milestone {key} is done (1) or not (0); got {flag!r}")
        n_done = sum(ticked.values())
        return made(n_done / len(known), numerator=n_done, denominator=float(len(known)), components=ticked)
    if kind == "parts":
        parts = (row.get("details") or {})["components"]
        keys = [str(p["key"]) for p in parts]
        if set(given) != {"components"} or components is None or set(components) != set(keys):
            raise EntryError(
                f"{indicator_id} takes its parts as `components`: {', '.join(keys)} (times done)"
            )
        counts = {k: _finite(k, float(components[k])) for k in keys}
        planned = sum(float(p["per_year"]) for p in parts)
        done = sum(min(counts[str(p["key"])], float(p["per_year"])) for p in parts)
        return made(done / planned, numerator=done, denominator=planned, components=counts)
    if kind == "quota":
        quota_keys = [str(c["key"]) for c in (row.get("details") or {})["components"]]
        if set(given) == {"value"} and value is not None:
            return made(_boolean(indicator_id, value))
        if set(given) != {"components"} or components is None or set(components) != set(quota_keys):
            raise EntryError(
                f"{indicator_id} takes `components` {', '.join(quota_keys)} (people), "
                "or a yes/no `value` (1 or 0)"
            )
        people = {k: _finite(k, float(components[k])) for k in quota_keys}
        met = all(
            people[k] >= people[k.replace("_employed", "_required")]
            for k in quota_keys
            if k.endswith("_employed")
        )
        return made(1.0 if met else 0.0, components=people)
    if kind == "ratio":
        if set(given) == {"numerator", "denominator"} and numerator is not None and denominator is not None:
            _finite("numerator", numerator)
            if not math.isfinite(denominator) or denominator <= 0:
                raise EntryError(f"`denominator` must be > 0; got {denominator!r}")
            return made(numerator / denominator, numerator=numerator, denominator=denominator)
        if set(given) == {"value"} and value is not None:
            scale = 100.0 if unit == "%" else 1.0
            if unit == "%" and 0 < value <= 1:  # every target is 40-100 %: this is a fraction typed
                raise EntryError(
                    f"{indicator_id}'s `value` is in percent: {value:g} reads as {value:g} %; for "
                    f"{100 * value:g} % write {100 * value:g} (or give numerator and denominator)"
                )
            return made(_finite("value", value) / scale)
        raise EntryError(
            f"{indicator_id} is a ratio: give `numerator` and `denominator` (> 0), or `value`"
            + (" in percent" if unit == "%" else "")
            + f"; got {list(given) or 'nothing'}"
        )
    if kind == "count":
        if set(given) != {"value"} or value is None:
            raise EntryError(
                f"{indicator_id} is a count ({unit}): give `value`; got {list(given) or 'nothing'}"
            )
        return made(_finite("value", value))
    if set(given) != {"value"} or value is None:
        raise EntryError(f"{indicator_id} is yes/no: give `value` 1 or 0; got {list(given) or 'nothing'}")
    return made(_boolean(indicator_id, value))


def _boolean(indicator_id: str, value: float) -> float:
    if value not in (0.0, 1.0):
        raise EntryError(f"{indicator_id} is yes/no: `value` is 1 or 0; got {value!r}")
    return float(value)


# --- CSV -------------------------------------------------------------------------------------


@dataclass
class RowError:
    line: int
    indicator_id: str | None
    message: str


def _number(name: str, text: str) -> float | None:
    text = text.strip().replace(",", "")
    if not text:
        return None
    if text.endswith("%"):
        text = text[:-1].strip()
    try:
        number = float(text)
    except ValueError:
        raise EntryError(f"`{name}` is not a number: {text!r}") from None
    if not math.isfinite(number):
        raise EntryError(f"`{name}` is not a finite number: {text!r}")
    return number


def parse_components(text: str) -> dict[str, float] | None:
    """`key=value; key=value` (1/0, yes/no, 是/否 for milestones) into a dict; None if empty."""
    text = text.strip()
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.replace("；", ";").split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise EntryError(f"`components` wants key=value pairs separated by ';'; got {part!r}")
        if key in out:
            raise EntryError(f"`components` names {key} twice")
        lowered = raw.lower()
        if lowered in _TRUE - {"1"} or lowered in _FALSE - {"0", ""}:
            out[key] = 1.0 if lowered in _TRUE else 0.0
            continue
        number = _number(key, raw)
        if number is None:
            raise EntryError(f"`components` has no value for {key}")
        out[key] = number
    return out or None


def read_csv(data: bytes) -> tuple[list[dict[str, str]], list[RowError]]:
    """Rows of an uploaded CSV as {column: text} with their line numbers in `_line`; header errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [RowError(0, None, f"the file is not UTF-8 (byte {exc.start}); save it as CSV UTF-8")]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = sorted(_REQUIRED_COLUMNS - set(header))
    unknown = sorted(set(header) - set(CSV_COLUMNS) - {"plan_id", "unit"})
    if missing or unknown:
        problems = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
            [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        )
        return [], [RowError(1, None, "; ".join(problems) + f"; expected {', '.join(CSV_COLUMNS)}")]
    reader.fieldnames = header
    rows: list[dict[str, str]] = []
    errors: list[RowError] = []
    for record in reader:
        line = reader.line_num
        if None in record:
            errors.append(RowError(line, None, "more cells than columns"))
            continue
        cells = {k: (v or "") for k, v in record.items()}
        if not any(v.strip() for v in cells.values()):
            continue  # Excel leaves blank lines at the end
        cells["_line"] = str(line)
        rows.append(cells)
    return rows, errors


def entry_from_cells(row: Mapping[str, Any], cells: Mapping[str, str], year: int) -> Entry:
    """One CSV row (already matched to its catalogue row) as a validated entry."""
    return make_entry(
        row,
        year,
        value=_number("value", cells.get("value", "")),
        numerator=_number("numerator", cells.get("numerator", "")),
        denominator=_number("denominator", cells.get("denominator", "")),
        components=parse_components(cells.get("components", "")),
        evidence=cells.get("evidence") or None,
        note=cells.get("note") or None,
    )


def format_number(value: float | None) -> str:
    """Short, stable text for a number: 10 significant digits, no trailing zeros."""
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}"


def export_cells(row: Mapping[str, Any], stored: Mapping[str, Any]) -> dict[str, str]:
    """A stored entry in the form it was entered, so that importing it gives the same entry back."""
    kind = structure(row)
    cells = dict.fromkeys(CSV_COLUMNS, "")
    cells["indicator_id"] = str(row["indicator_id"])
    cells["year"] = str(stored["year"])
    components = stored.get("components")
    if components and kind in ("checklist", "parts", "quota"):
        cells["components"] = "; ".join(f"{k}={format_number(float(v))}" for k, v in components.items())
    elif kind == "ratio" and stored.get("numerator") is not None and stored.get("denominator") is not None:
        cells["numerator"] = format_number(float(stored["numerator"]))
        cells["denominator"] = format_number(float(stored["denominator"]))
    else:
        scale = 100.0 if kind == "ratio" and str(row.get("unit")) == "%" else 1.0
        cells["value"] = format_number(float(stored["value"]) * scale)
    cells["evidence"] = str(stored.get("evidence") or "")
    cells["note"] = str(stored.get("note") or "")
    return cells


def write_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """CSV text with a BOM, so Excel opens the Chinese as UTF-8."""
    out = io.StringIO(newline="")
    out.write("\ufeff")
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in CSV_COLUMNS})
    return out.getvalue()


def same_entry(entry: Entry, stored: Mapping[str, Any] | None) -> bool:
    """Whether `stored` already says what `entry` says (re-importing a file changes nothing)."""
    if stored is None:
        return False

    def close(a: float | None, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(float(a), float(b), rel_tol=1e-12, abs_tol=1e-12)

    stored_components = stored.get("components") or None
    return (
        close(entry.value, stored.get("value"))
        and close(entry.numerator, stored.get("numerator"))
        and close(entry.denominator, stored.get("denominator"))
        and (entry.components or None)
        == ({k: float(v) for k, v in stored_components.items()} if stored_components else None)
        and (entry.evidence or None) == (stored.get("evidence") or None)
        and (entry.note or None) == (stored.get("note") or None)
    )
