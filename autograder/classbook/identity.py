"""Who a result belongs to: one learner key per id, and the ids a person must look at before it counts.

Ids reach the gradebook from names learners chose (a practical archive's file name, its folder, a quiz ticket), so
two differently written ids must never merge into one learner silently:
- `key`: how one learner is matched across labs, quizzes, the practical and the roster: Unicode NFKC (so a
  KELVIN SIGN is a K and a full-width letter a letter), outer spaces and case aside;
- `unplain`: why an id is not a plain one as the course's own tools write it (`submit` and `grade` keep
  [A-Za-z0-9_.@-] only): an id whose key needed Unicode normalisation, or that holds spaces, invisible or
  non-ASCII characters, is matched all the same but flagged for review (it is what a look-alike hand-in is);
- `skeleton`: an id as it looks: invisible characters and accents dropped, common Cyrillic and Greek look-alikes
  of Latin letters made Latin. An unplain id whose skeleton is another learner's or a roster id's key is flagged
  naming that id, and is not matched to it.
"""

from __future__ import annotations

import re
import unicodedata

_PLAIN = re.compile(r"[A-Za-z0-9_.@-]+")
# Cyrillic and Greek letters drawn like Latin ones (Unicode's confusables.txt, the letters an id could use)
_LOOKALIKE = str.maketrans({
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ӏ": "l", "ɡ": "g",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
})


def key(student: str) -> str:
    """The learner an id names: NFKC-normalised, outer spaces and case aside."""
    return unicodedata.normalize("NFKC", student).strip().casefold()


def unplain(student: str) -> str:
    """Why `student` is not an id the course's tools write, in words (names each odd character), or ''."""
    if _PLAIN.fullmatch(student):
        return ""
    odd = [ch for ch in dict.fromkeys(student) if not _PLAIN.fullmatch(ch)]
    shown = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')}" for ch in odd[:3])
    more = f" and {len(odd) - 3} more" if len(odd) > 3 else ""
    normalised = " (Unicode normalisation changes it)" if unicodedata.normalize("NFKC", student) != student else ""
    return f"the id {shown_id(student)} holds {shown}{more}{normalised}, which ids made by the course's tools never do"


def skeleton(student: str) -> str:
    """`student` as a reader sees it, for comparing look-alikes (see the module's docstring)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", student))
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] not in ("M", "C", "Z"))
    return text.casefold().translate(_LOOKALIKE)


def shown_id(student: str) -> str:
    """An id quoted for a person: every character outside printable ASCII (and a quote or backslash) escaped, so
    a look-alike reads differently from the id it imitates."""
    out = []
    for ch in student:
        if ch in "'\\":
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "'" + "".join(out) + "'"
