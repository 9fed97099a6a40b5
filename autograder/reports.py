"""The grading package's output helpers are the shared base's (mlinfra.base.output)."""

from __future__ import annotations

from mlinfra.base.output import (
    add_json_option,
    ensure_dir,
    format_table,
    shorten,
    to_jsonable,
    write_json,
    write_text,
)

__all__ = ["add_json_option", "ensure_dir", "format_table", "shorten", "to_jsonable", "write_json", "write_text"]
