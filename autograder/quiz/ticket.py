"""Exam tickets: what binds an exam record to one learner (docs/quizzes.md, "Exam tickets").

The instructor issues one ticket per learner and quiz (`autograder quiz ticket`), signed with HMAC-SHA256 under
a key that only the instructor's repository holds (.state/quiz-ticket.key: .state/ is never committed and never
copied into a class copy). The learner takes the exam with it (`quiz take --exam --ticket FILE`); the record
carries the ticket, and `quiz grade` scores a record only when the ticket's signature verifies and its learner and
quiz are the record's. The ticket's random nonce also seeds the draw, so a draw cannot be computed from a learner
id alone, and a new ticket gives a new draw.

What a ticket proves: the instructor issued this quiz to this learner id, and nobody changed the learner id, the
quiz, the window or the time limit since. What it cannot prove: who typed the answers (a learner can hand their
ticket to someone else), or the times in a record taken on the learner's own machine (the clock is theirs).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from autograder.errors import UsageError

TICKET_FORMAT = 1
KEY_FILE = Path(".state") / "quiz-ticket.key"
SIGNED = ("ticket", "quiz", "learner", "nonce", "issued", "opens", "closes", "minutes")


@dataclass(frozen=True)
class Ticket:
    quiz: str
    learner: str
    nonce: str
    issued: str
    opens: str | None = None  # ISO 8601 with a zone: the exam may not start before
    closes: str | None = None  # ... nor after
    minutes: float | None = None  # the time limit from the start

    def fields(self) -> dict[str, Any]:
        return {"ticket": TICKET_FORMAT, "quiz": self.quiz, "learner": self.learner, "nonce": self.nonce,
                "issued": self.issued, "opens": self.opens, "closes": self.closes, "minutes": self.minutes}


def same_learner(a: str, b: str) -> bool:
    """Learner ids compare as the draw's seed does: trimmed and case-folded."""
    return a.strip().casefold() == b.strip().casefold()


def key_path(root: Path) -> Path:
    return root / KEY_FILE


def load_key(path: Path, *, create: bool = False) -> bytes:
    """The instructor's signing key; `create` makes one (32 random bytes, readable by its owner only)."""
    if not path.is_file():
        if not create:
            raise UsageError(f"{path}: no exam-ticket key here; issue tickets first with `.venv/bin/autograder quiz ticket "
                             "QUIZ LEARNER...` (it creates the key), or pass the key file with --key")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    text = path.read_text(encoding="utf-8").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise UsageError(f"{path}: not an exam-ticket key (expected a line of hex); restore it from your backup")
    return key


def _payload(fields: dict[str, Any]) -> bytes:
    return json.dumps({k: fields.get(k) for k in SIGNED}, sort_keys=True, separators=(",", ":")).encode()


def sign(key: bytes, ticket: Ticket) -> dict[str, Any]:
    """The ticket as the learner receives it: its fields and their signature."""
    fields = ticket.fields()
    return {**fields, "signature": hmac.new(key, _payload(fields), hashlib.sha256).hexdigest()}


def issue(key: bytes, quiz: str, learner: str, *, opens: str | None = None, closes: str | None = None,
          minutes: float | None = None) -> dict[str, Any]:
    for name, value in (("--opens", opens), ("--closes", closes)):
        if value is not None and parse_time(value) is None:
            raise UsageError(f"{name} {value!r}: give a date and time with a zone, e.g. 2026-12-01T09:00+00:00")
    if minutes is not None and not minutes > 0:
        raise UsageError(f"--minutes {minutes}: a time limit must be a positive number of minutes")
    ticket = Ticket(quiz=quiz, learner=learner.strip(), nonce=secrets.token_hex(16), issued=now(), opens=opens,
                    closes=closes, minutes=minutes)
    return sign(key, ticket)


def parse(data: Any) -> Ticket | None:
    """A ticket's fields, read without trusting them (None when it is not shaped like a ticket)."""
    if not isinstance(data, dict):
        return None
    text = ("quiz", "learner", "nonce", "issued")
    if not all(isinstance(data.get(k), str) and data.get(k) for k in text):
        return None
    minutes = data.get("minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float))):
        return None
    for k in ("opens", "closes"):
        if data.get(k) is not None and not isinstance(data.get(k), str):
            return None
    return Ticket(quiz=data["quiz"], learner=data["learner"], nonce=data["nonce"], issued=data["issued"],
                  opens=data.get("opens"), closes=data.get("closes"),
                  minutes=float(minutes) if minutes is not None else None)


def verify(key: bytes, data: Any) -> tuple[Ticket | None, str]:
    """(the ticket, "") when its signature is the instructor's, else (None, why not)."""
    ticket = parse(data)
    if ticket is None:
        return None, "the ticket is missing a field (quiz, learner, nonce, issued)"
    signature = data.get("signature")
    if not isinstance(signature, str):
        return None, "the ticket has no signature"
    expected = hmac.new(key, _payload(data), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.strip().lower()):
        return None, "the ticket's signature does not verify (it was changed, or signed with another key)"
    return ticket, ""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time with a zone, or None (a naive time would mean a different instant on each machine)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else None


def window_problem(ticket: Ticket, moment: datetime) -> str:
    """Why `moment` is outside the ticket's window, or ""."""
    opens, closes = parse_time(ticket.opens), parse_time(ticket.closes)
    if opens and moment < opens:
        return f"the exam opens at {ticket.opens}"
    if closes and moment > closes:
        return f"the exam closed at {ticket.closes}"
    return ""
