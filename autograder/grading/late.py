"""Deadlines and the late rule: the course file (`course.yaml`) and what it makes of a submission's time.

The course file is explicit YAML, validated here; every error names the file and the key (BadConfig)::

    timezone: Europe/London          # IANA name; due times written without an offset are in it
    late:                            # the course's late rule (every key optional)
      grace_minutes: 15              # this late still counts as on time
      penalty_per_day: 10            # percent of the maximum score, per day or part of a day late
      max_penalty: 50                # percent: the penalty never exceeds it
      refuse_after_days: 7           # later than this after the due time: not accepted (scored 0); 0 refuses
                                     # anything past the grace
    due:
      lab01-environment: 2026-10-05 23:59
      module01: {at: 2026-10-12 18:00, late: {refuse_after_days: 0}}   # an item's own rule (keys override)
    extensions:
      ada:
        lab01-environment: 2026-10-08 23:59    # a new due time for this learner
      bob:
        lab01-environment: {days: 2}           # or days added to the due time

The time judged is when the instructor received the submission (submissions.py, `received`): the archive's or the
folder's modification time as collected, never the learner's own `submit` stamp, which the learner's clock writes.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import yaml

from autograder.errors import BadConfig, UsageError

MAX_ENTRIES = 2000  # looked at in a submitted folder for its newest time (submissions.MAX_ENTRIES: what is staged)

_TOP = {"timezone", "late", "due", "extensions"}
_RULE = {"grace_minutes", "penalty_per_day", "max_penalty", "refuse_after_days"}


@dataclass(frozen=True)
class LateRule:
    grace_minutes: float = 0.0
    penalty_per_day: float = 0.0  # percent of the maximum score
    max_penalty: float = 100.0  # percent
    refuse_after_days: float | None = None  # None: never refused

    def describe(self) -> str:
        parts = [f"{self.grace_minutes:g} min grace"] if self.grace_minutes else []
        if self.penalty_per_day:
            parts.append(f"{self.penalty_per_day:g}% of the maximum a day late, at most {self.max_penalty:g}%")
        if self.refuse_after_days is not None:
            parts.append("not accepted after the grace" if self.refuse_after_days == 0
                         else f"not accepted after {self.refuse_after_days:g} day(s)")
        return "; ".join(parts) or "no penalty"


@dataclass(frozen=True)
class Course:
    path: str
    due: dict[str, datetime] = field(default_factory=dict)  # item -> due time (aware)
    rules: dict[str, LateRule] = field(default_factory=dict)  # item -> its rule (the course's rule when not own)
    default_rule: LateRule = LateRule()
    extensions: dict[str, dict[str, datetime]] = field(default_factory=dict)  # student -> item -> due time

    def rule(self, item: str) -> LateRule:
        return self.rules.get(item, self.default_rule)

    def due_for(self, item: str, student: str) -> tuple[datetime | None, bool]:
        """The learner's due time for the item (their extension when they have one) and whether it is one."""
        own = self.extensions.get(student, {}).get(item)
        return (own, True) if own is not None else (self.due.get(item), False)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "due": {k: v.isoformat() for k, v in self.due.items()},
                "rules": {k: asdict(v) for k, v in self.rules.items()}, "default_rule": asdict(self.default_rule),
                "extensions": {s: {k: v.isoformat() for k, v in items.items()}
                               for s, items in self.extensions.items()}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Course:
        return cls(path=raw.get("path", ""),
                   due={k: datetime.fromisoformat(v) for k, v in raw.get("due", {}).items()},
                   rules={k: LateRule(**v) for k, v in raw.get("rules", {}).items()},
                   default_rule=LateRule(**raw.get("default_rule", {})),
                   extensions={s: {k: datetime.fromisoformat(v) for k, v in items.items()}
                               for s, items in raw.get("extensions", {}).items()})


@dataclass(frozen=True)
class Lateness:
    """What the late rule made of one submission (kept in the outcome's data as `late`)."""
    submitted_at: str  # ISO 8601, UTC, or "" when unknown
    due: str = ""  # the due time applied (the extension's when there is one), ISO 8601
    extension: bool = False
    late_by_hours: float = 0.0
    penalty_percent: float = 0.0
    refused: bool = False
    rule: str = ""

    def penalty_points(self, earned: float, max_score: float) -> float:
        """Points taken off: a share of the maximum score, never more than was earned (a grade is never below 0);
        a refused submission loses everything it earned."""
        if self.refused:
            return round(earned, 3)
        return round(min(earned, max_score * self.penalty_percent / 100.0), 3)

    def note(self) -> str:
        if not self.due:
            return ""
        if self.late_by_hours <= 0:
            return ""
        when = _duration(self.late_by_hours)
        whose = "the extended due time" if self.extension else "the due time"
        if self.refused:
            return f"handed in {when} after {whose} ({self.due}): not accepted under the late rule ({self.rule})"
        if self.penalty_percent:
            return (f"handed in {when} after {whose} ({self.due}): late penalty {self.penalty_percent:g}% of the "
                    f"maximum ({self.rule})")
        return f"handed in {when} after {whose} ({self.due}): within the grace, no penalty"


def _duration(hours: float) -> str:
    minutes = round(hours * 60)
    days, rest = divmod(minutes, 24 * 60)
    h, m = divmod(rest, 60)
    return (f"{days} d " if days else "") + f"{h} h {m:02d} min"


def judge(course: Course | None, item: str, student: str, received: float | None) -> Lateness:
    """The late rule applied to a submission received at `received` (seconds since the epoch; None: unknown)."""
    at = datetime.fromtimestamp(received, timezone.utc) if received is not None else None
    stamp = at.isoformat(timespec="seconds") if at else ""
    if course is None:
        return Lateness(submitted_at=stamp)
    due, extended = course.due_for(item, student)
    if due is None or at is None:
        return Lateness(submitted_at=stamp, due=due.isoformat() if due else "", extension=extended)
    rule = course.rule(item)
    late_s = (at - due).total_seconds()
    base = Lateness(submitted_at=stamp, due=due.isoformat(), extension=extended,
                    late_by_hours=round(max(0.0, late_s) / 3600, 2), rule=rule.describe())
    if late_s <= rule.grace_minutes * 60:
        return base
    if rule.refuse_after_days is not None and late_s > rule.grace_minutes * 60 + rule.refuse_after_days * 86400:
        return Lateness(**{**asdict(base), "refused": True, "penalty_percent": 100.0})
    days = math.ceil(late_s / 86400)
    percent = min(rule.max_penalty, days * rule.penalty_per_day)
    return Lateness(**{**asdict(base), "penalty_percent": float(percent)})


def received_time(entry: Path) -> float | None:
    """When the instructor received an entry, as collected: an archive's modification time; a folder's newest
    modification time of itself and anything in it (links not followed, at most MAX_ENTRIES looked at). This is
    the time the collecting copy gave the files (an LMS download, a shared folder): it proves when the instructor
    had the work only if that copy stamps the time of receipt. The learner's own `submit` stamp (in the manifest,
    from the learner's clock) is never used; neither is a time a learner could set in the archive's entries."""
    try:
        info = entry.lstat()
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return None
    newest = info.st_mtime
    if stat.S_ISDIR(info.st_mode):
        seen = 0
        for dirpath, dirnames, filenames in os.walk(entry, followlinks=False):
            for name in [*dirnames, *filenames]:
                seen += 1
                if seen > MAX_ENTRIES:
                    return newest
                try:
                    newest = max(newest, (Path(dirpath) / name).lstat().st_mtime)
                except OSError:
                    continue
    return newest


# ------------------------------------------------------------------------------------------------ the course file

def _zone(path: Path, name: Any) -> tzinfo | None:
    if name is None:
        return None
    if not isinstance(name, str):
        raise BadConfig(path, "timezone", f"expected an IANA time zone name such as Europe/London, got {name!r}")
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError for odd names
        raise BadConfig(path, "timezone", f"unknown time zone {name!r}; use an IANA name such as UTC or "
                        "Europe/London") from None


def _when(path: Path, key: str, value: Any, zone: tzinfo | None) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadConfig(path, key, f"{value!r} is not a date and time; write e.g. 2026-10-05 23:59 or "
                            "2026-10-05T23:59:00+01:00") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, 23, 59, 59)  # a date alone: the end of that day
    if not isinstance(value, datetime):
        raise BadConfig(path, key, f"expected a date and time such as 2026-10-05 23:59, got {value!r}")
    if value.tzinfo is None:
        if zone is None:
            raise BadConfig(path, key, "a time without an offset: add one (2026-10-05T23:59:00+01:00) or set "
                            "`timezone:` at the top of the file")
        value = value.replace(tzinfo=zone)
    return value


def _number(path: Path, key: str, value: Any, *, percent: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (percent and value > 100):
        limit = "between 0 and 100" if percent else "0 or more"
        raise BadConfig(path, key, f"expected a number {limit}, got {value!r}")
    return float(value)


def _rule(path: Path, key: str, raw: Any, base: LateRule) -> LateRule:
    if not isinstance(raw, dict):
        raise BadConfig(path, key, f"expected a mapping with any of {', '.join(sorted(_RULE))}")
    unknown = sorted(set(raw) - _RULE)
    if unknown:
        raise BadConfig(path, f"{key}.{unknown[0]}", f"unknown key; allowed: {', '.join(sorted(_RULE))}")
    values = asdict(base)
    for name in _RULE & set(raw):
        if name == "refuse_after_days" and raw[name] is None:
            values[name] = None
            continue
        values[name] = _number(path, f"{key}.{name}", raw[name], percent=name in ("penalty_per_day", "max_penalty"))
    return LateRule(**values)


def load_course(path: Path) -> Course:
    """Read and validate a course file; BadConfig names the file and the key at fault."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise UsageError(f"{path}: no such course file (docs/instructor-guide.md, 'Deadlines and the late rule')") \
            from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise BadConfig(path, f"line {mark.line + 1}" if mark else "", f"not valid YAML "
                        f"({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise BadConfig(path, "", "expected a mapping with timezone, late, due and extensions")
    unknown = sorted(set(data) - _TOP)
    if unknown:
        raise BadConfig(path, unknown[0], f"unknown key; allowed: {', '.join(sorted(_TOP))}")
    zone = _zone(path, data.get("timezone"))
    default = _rule(path, "late", data.get("late") or {}, LateRule())
    due: dict[str, datetime] = {}
    rules: dict[str, LateRule] = {}
    raw_due = data.get("due") or {}
    if not isinstance(raw_due, dict):
        raise BadConfig(path, "due", "expected a mapping of lab or quiz name to its due time")
    for item, value in raw_due.items():
        key = f"due.{item}"
        if isinstance(value, dict):
            extra = sorted(set(value) - {"at", "late"})
            if extra or "at" not in value:
                raise BadConfig(path, f"{key}.{extra[0]}" if extra else key,
                                "expected {at: TIME} with an optional late: {...} rule of its own")
            due[str(item)] = _when(path, f"{key}.at", value["at"], zone)
            if "late" in value:
                rules[str(item)] = _rule(path, f"{key}.late", value["late"], default)
        else:
            due[str(item)] = _when(path, key, value, zone)
    extensions: dict[str, dict[str, datetime]] = {}
    raw_ext = data.get("extensions") or {}
    if not isinstance(raw_ext, dict):
        raise BadConfig(path, "extensions", "expected a mapping of learner to {item: new due time or {days: N}}")
    for student, items in raw_ext.items():
        if not isinstance(items, dict):
            raise BadConfig(path, f"extensions.{student}", "expected a mapping of lab or quiz to its new due time")
        for item, value in items.items():
            key = f"extensions.{student}.{item}"
            if str(item) not in due:
                raise BadConfig(path, key, f"{item!r} has no due time under `due:`; an extension moves a due time")
            if isinstance(value, dict):
                if set(value) != {"days"}:
                    raise BadConfig(path, key, "expected a new due time or {days: N}")
                when = due[str(item)] + timedelta(days=_number(path, f"{key}.days", value["days"]))
            else:
                when = _when(path, key, value, zone)
            extensions.setdefault(str(student), {})[str(item)] = when
    return Course(path=str(path), due=due, rules=rules, default_rule=default, extensions=extensions)
