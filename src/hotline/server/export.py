"""Tables (reports, call records) as JSON, CSV or an Excel workbook.

CSV carries the JSON's values as they are (times as ISO 8601), for imports and scripts. The
workbook is for people: times are Excel dates, durations are Excel times shown ``[h]:mm:ss``
and ratios percentages, so they read well and still add up in a formula."""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from datetime import datetime
from typing import Any

import xlsxwriter
from fastapi.responses import JSONResponse, Response

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STAMPS = frozenset({"interval_start", "arrived_at", "answered_at", "ended_at"})
DURATIONS = frozenset(
    {
        "asa",
        "aht",
        "max_wait",
        "avg_talk",
        "avg_hold",
        "avg_wrap",
        "talk_time",
        "logged_in_time",
        "not_ready_time",
        "outbound_talk_time",
        "staffed_time",
        "occupied_time",
        "wait",
        "talk",
        "hold",
        "wrap",
    }
)
RATIOS = frozenset({"service_level", "abandon_rate", "occupancy", "adherence", "conformance",
                    "shrinkage"})
_FORMATS = {"stamp": "yyyy-mm-dd hh:mm:ss", "duration": "[h]:mm:ss", "ratio": "0.0%"}
_WIDTHS = {"stamp": 19, "duration": 10, "ratio": 8}


def _kind(column: str) -> str | None:
    if column in STAMPS:
        return "stamp"
    if column in DURATIONS or column.endswith("_time"):  # e.g. not_ready_lunch_time
        return "duration"
    if column in RATIOS or column.endswith("_share"):
        return "ratio"
    return None


def _local(value: Any) -> datetime:
    """A time (ISO 8601 with offset, or Unix seconds) as the server's local wall-clock time:
    Excel dates have no time zone."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).astimezone().replace(tzinfo=None)
    return datetime.fromtimestamp(value)


def _width(text: str) -> int:
    """Characters a column needs: a Chinese character takes two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else str(value)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        values = []
        for c in columns:
            v = row.get(c)
            if v is None:
                values.append("")
            elif c in STAMPS and not isinstance(v, str):  # Unix seconds: readable, with offset
                values.append(datetime.fromtimestamp(v).astimezone().isoformat(timespec="seconds"))
            else:
                values.append(_text(v) if isinstance(v, (dict, list)) else v)
        writer.writerow(values)
    return out.getvalue().encode()


def _xlsx(rows: list[dict[str, Any]], columns: list[str], sheet: str) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    ws = book.add_worksheet(sheet)
    header = book.add_format({"bold": True, "bg_color": "#E8EEF5", "bottom": 1})
    formats = {k: book.add_format({"num_format": f}) for k, f in _FORMATS.items()}
    kinds = [_kind(c) for c in columns]
    widths = [max(len(c), _WIDTHS.get(k or "", 0)) for c, k in zip(columns, kinds, strict=True)]
    ws.write_row(0, 0, columns, header)
    for r, row in enumerate(rows, start=1):
        for c, (name, kind) in enumerate(zip(columns, kinds, strict=True)):
            v = row.get(name)
            if v is None:
                continue
            if kind == "stamp":
                ws.write_datetime(r, c, _local(v), formats["stamp"])
            elif kind == "duration":
                ws.write_number(r, c, v / 86400, formats["duration"])
            elif kind == "ratio":
                ws.write_number(r, c, v, formats["ratio"])
            elif isinstance(v, bool):
                ws.write_boolean(r, c, v)
            elif isinstance(v, (int, float)):
                ws.write_number(r, c, v)
                widths[c] = max(widths[c], len(f"{v:g}"))
            else:  # write_string: a text is never taken for a formula
                text = _text(v)
                ws.write_string(r, c, text)
                widths[c] = max(widths[c], _width(text))
    for c, width in enumerate(widths):
        ws.set_column(c, c, min(width, 50) + 2)
    ws.freeze_panes(1, 0)
    ws.autofilter(0, 0, len(rows), len(columns) - 1)
    book.close()
    return out.getvalue()


def table(rows: list[dict[str, Any]], fmt: str, name: str, columns: list[str]) -> Response:
    """``rows`` as ``fmt`` (json, csv, xlsx); a file is named ``name`` (and its sheet the part
    before the first ``-``). Called on a worker thread: big tables must not stall the loop."""
    if fmt == "json":
        return JSONResponse({"columns": columns, "rows": rows})
    if fmt == "csv":
        body, media = _csv(rows, columns), "text/csv; charset=utf-8"
    else:
        body, media = _xlsx(rows, columns, name.split("-")[0]), XLSX
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )
