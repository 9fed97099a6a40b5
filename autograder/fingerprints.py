"""The normalising lexer behind the class copy's leak check (autograder/classcopy.py, docs/class-copy.md).

Every file is read down to the words it says, whatever way a Python source or a notebook spells them:
- Python is read with Python's own tokenizer, after the file's declared source encoding (`# coding: utf-7`,
  latin-1, ...); string literals are replaced by their values (escapes `\\x69`, `\\N{...}`, raw strings, bytes,
  adjacent literals joined, f-strings' literal parts), numbers by their values (`0x1f99` is 8089); identifiers
  are NFKC-normalised as Python itself does (a full-width `ｍodel` is `model`);
- a string literal that holds base64, hex or zlib/gzip/bz2/lzma data, a long one read backwards, through rot13
  or with its escapes written twice, and a run of small integers (character codes), are decoded too, each
  joining the file as one more piece; so are base64 and hex blobs in any text;
- a notebook is read per cell (code as Python, markdown and outputs as text), JSON and YAML also through their
  parsers (so `\\u0069` is `i`), anything else as text.
What is left is a stream of lower-case words (identifiers, keywords, numbers): punctuation, layout and quoting are
dropped, so `base_url=http://localhost:9000` in a config file, `{"base_url": "http://localhost:9000"}` in a
dict and the same line built by adjacent literals all read `base_url http localhost 9000`. A
BREAK marks where a piece ends (a comment, a decoded payload, an f-string's replacement field, a cell), so no
match is made across two unrelated pieces.
"""

from __future__ import annotations

import ast
import base64
import binascii
import codecs
import contextlib
import io
import json
import re
import tokenize
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path

BREAK = "\x00"
_WORD = re.compile(r"[^\W\d_]\w*|_\w+|\d+")
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-\s]{24,}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}\s?){12,}")
_BLOB = re.compile(r"[A-Za-z0-9+/=_\-]{32,}")
# Character codes of printable text: a run of at least this many small integers is read as text too.
_CODES_RUN = 8
# A string literal this long is also read reversed and through rot13 (a docstring read backwards is noise).
_TRANSFORM_MIN = 24


def words(text: str) -> list[str]:
    """The lower-case words of `text` (identifiers, keywords, numbers), NFKC-normalised as Python normalises names."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


@dataclass
class Lexed:
    """One file (or cell) read down to its words.

    `code`: (line, word) of the code and of string values, in order, comments left out, BREAK between pieces;
    `comments`: (line, words) of each comment; `extra`: word lists of decoded payloads (base64, character codes).
    """

    code: list[tuple[int, str]] = field(default_factory=list)
    comments: list[tuple[int, list[str]]] = field(default_factory=list)
    extra: list[list[str]] = field(default_factory=list)

    def stream(self) -> list[str]:
        """Everything, comments and payloads included, as one word list with BREAKs between pieces."""
        out = [w for _, w in self.code]
        last = -1
        for line, said in self.comments:  # a block of comment lines reads as one piece, like a paragraph
            out += [*([] if line == last + 1 else [BREAK]), *said]
            last = line
        for said in self.extra:
            out += [BREAK, *said]
        return out


def _text_payloads(data: bytes) -> list[str]:
    """Text hidden in `data` under a compression layer or plainly: what a decoder would recover."""
    import bz2
    import gzip
    import lzma
    import zlib

    found = []
    for unpack in (zlib.decompress, gzip.decompress, bz2.decompress, lzma.decompress, lambda b: b):
        try:
            raw = unpack(data)
            text = raw.decode("utf-8")
        except Exception:  # noqa: BLE001, S112 - any failure means "not this encoding"
            continue
        if text and sum(c.isprintable() or c.isspace() for c in text) >= 0.9 * len(text):
            found.append(text)
    return found


def decoded_payloads(value: str | bytes) -> list[str]:
    """Texts a string or bytes literal may hold in encoded form: base64 (standard or URL-safe), hex, compressed."""
    found: list[str] = []
    if isinstance(value, bytes):
        found += [t for t in _text_payloads(value) if t.encode("utf-8", "replace") != value]
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return found
    compact = "".join(value.split())
    if _BASE64.fullmatch(value.strip() or "x") and len(compact) >= 24:
        for decode in (base64.b64decode, base64.urlsafe_b64decode):
            try:
                found += _text_payloads(decode(compact + "=" * (-len(compact) % 4)))
                break
            except (binascii.Error, ValueError):
                continue
    if _HEX.fullmatch(value.strip() or "x"):
        with contextlib.suppress(ValueError):
            found += _text_payloads(bytes.fromhex(compact))
    if len(value) >= _TRANSFORM_MIN:  # turned back at run time: reversed, rot13, escapes written twice
        found += [value[::-1], codecs.decode(value, "rot13")]
        if "\\" in value:
            with warnings.catch_warnings():  # "invalid escape sequence" is expected of ordinary text
                warnings.simplefilter("ignore")
                with contextlib.suppress(UnicodeDecodeError, ValueError):
                    found.append(codecs.decode(value, "unicode_escape"))
    return found


def text_pieces(text: str) -> list[list[str]]:
    """A text's words, and those of every base64 or hex blob in it, decoded."""
    pieces = [lex_text(text).stream()]
    for blob in _BLOB.findall(text):
        pieces += [words(payload) for payload in decoded_payloads(blob) if payload != blob]
    return pieces


def _literal(token: str) -> tuple[list[str | None], list[str]]:
    """(the parts of a string literal's value, None where an f-string's replacement field sits; payloads)."""
    try:
        node = ast.parse(token.strip(), mode="eval").body
    except SyntaxError:
        return [token], []
    if isinstance(node, ast.Constant) and isinstance(node.value, (str, bytes)):
        value = node.value
        text = value if isinstance(value, str) else value.decode("utf-8", "replace")
        return [text], decoded_payloads(value)
    if isinstance(node, ast.JoinedStr):
        parts: list[str | None] = []
        for part in node.values:
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                parts.append(part.value)
            else:
                parts.append(None)
        return parts, []
    return [token], []


def _number(token: str) -> str:
    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError):
        return token
    # As a config file would write it: 0x1f99 -> 8089, 1e-2 -> 0.01, 1_000 -> 1000.
    return str(value) if isinstance(value, (int, float)) else token


def _source_text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        return data.decode(encoding)
    except (SyntaxError, LookupError, UnicodeDecodeError):
        return data.decode("latin-1")


def lex_python(data: bytes | str) -> Lexed | None:
    """A Python source read down to its words; None when Python's tokenizer cannot read it."""
    text = _source_text(data)
    out = Lexed()
    lines = text.splitlines(keepends=True)
    strings: list[tuple[int, str]] = []  # adjacent literals, joined as Python joins them
    codes: list[tuple[int, int]] = []  # a run of integer literals (character codes?)

    def flush_strings() -> None:
        if not strings:
            return
        parts: list[str | None] = []
        for _, token in strings:
            got, payloads = _literal(token)
            parts += got
            out.extra += [words(p) for p in payloads]
        line = strings[0][0]
        piece: list[str] = []
        for part in parts:
            if part is None:  # an f-string's replacement field: its value is unknown here
                out.code += [(line, w) for w in words("".join(piece))] + [(line, BREAK)]
                piece = []
            else:
                piece.append(part)
        out.code += [(line, w) for w in words("".join(piece))]
        strings.clear()

    def flush_codes() -> None:
        if len(codes) >= _CODES_RUN and all(9 <= c < 0x110000 for _, c in codes):
            with contextlib.suppress(ValueError):
                out.extra.append(words("".join(chr(c) for _, c in codes)))
        codes.clear()

    def position(row: int, col: int) -> int:
        return sum(len(x) for x in lines[: row - 1]) + col

    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None
    fstring_start = getattr(tokenize, "FSTRING_START", None)
    fstring_end = getattr(tokenize, "FSTRING_END", None)
    depth, opened = 0, (0, 0)
    for tok in tokens:
        kind = tok.type
        if fstring_start is not None and kind == fstring_start:  # Python 3.12+: f-strings come in pieces
            if depth == 0:
                opened = tok.start
            depth += 1
            continue
        if depth:
            if kind == fstring_end:
                depth -= 1
                if depth == 0:
                    flush_codes()
                    strings.append((opened[0], text[position(*opened): position(*tok.end)]))
            continue
        if kind == tokenize.STRING:
            flush_codes()
            strings.append((tok.start[0], tok.string))
            continue
        if kind in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) or (
                kind == tokenize.OP and tok.string in ",()[]" and not strings):
            if kind == tokenize.OP and tok.string != ",":
                flush_codes()
            continue
        flush_strings()
        if kind == tokenize.COMMENT:
            flush_codes()
            out.comments.append((tok.start[0], words(tok.string.lstrip("#"))))
        elif kind == tokenize.NUMBER:
            value = _number(tok.string)
            if value.isdigit():
                codes.append((tok.start[0], int(value)))
            else:
                flush_codes()
            out.code += [(tok.start[0], w) for w in words(value)]
        elif kind == tokenize.NAME:
            flush_codes()
            out.code.append((tok.start[0], words(tok.string)[0] if words(tok.string) else tok.string))
        elif kind in (tokenize.OP, tokenize.ENDMARKER):
            flush_codes()
        elif kind == tokenize.ERRORTOKEN and tok.string.strip():
            out.code += [(tok.start[0], w) for w in words(tok.string)]
    flush_strings()
    flush_codes()
    return out


def lex_text(text: str) -> Lexed:
    """Any text, line by line (comments are part of the text: nothing is left out)."""
    out = Lexed()
    for number, line in enumerate(text.splitlines(), start=1):
        out.code += [(number, w) for w in words(line)]
    return out


# Jupyter's line magics and shell escapes are not Python: blanked before tokenizing a cell.
_MAGIC = re.compile(r"^(\s*)([%!].*)$", re.MULTILINE)


def lex_cell(source: str, code: bool) -> list[list[str]]:
    if code:
        lexed = lex_python(_MAGIC.sub(lambda m: m.group(1) + "#" + m.group(2), source))
        if lexed is not None:
            return [lexed.stream()]
    return text_pieces(source)


def _strings_of(data: object) -> list[str]:
    """Every key and string value of parsed JSON or YAML, in order."""
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in (*_strings_of(k), *_strings_of(v))]
    if isinstance(data, (list, tuple)):
        return [s for item in data for s in _strings_of(item)]
    return [str(data)] if data is not None else []


def file_text(path: Path) -> str | None:
    """A non-Python file's text: UTF-8 (with or without a BOM), UTF-16 with a BOM, else None (binary)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    for bom, encoding in ((b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"), (b"\xef\xbb\xbf", "utf-8-sig")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def file_streams(path: Path) -> list[list[str]]:
    """Every piece of a file, each read down to a word list (BREAKs inside), for the leak check."""
    if path.suffix == ".py":
        try:
            lexed = lex_python(path.read_bytes())
        except OSError:
            return []
        if lexed is not None:
            return [lexed.stream()]
    text = file_text(path)
    if text is None:
        return []
    pieces: list[list[str]] = []
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(text)
        except ValueError:
            return [lex_text(text).stream()]
        for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else str(source)
            pieces += lex_cell(source, cell.get("cell_type") == "code")
            for output in cell.get("outputs", []) or []:
                pieces += text_pieces("\n".join(_strings_of(output)))
            pieces += text_pieces("\n".join(_strings_of(cell.get("metadata") or {})))
        pieces += text_pieces("\n".join(_strings_of(nb.get("metadata") or {})))
        return pieces
    pieces += text_pieces(text)
    if path.suffix in (".json", ".yaml", ".yml"):
        try:
            import yaml

            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: 10 times faster
            parsed = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=loader)
        except Exception:  # noqa: BLE001 - unparsable: the raw text above is all there is
            return pieces
        pieces.append([w for s in _strings_of(parsed) for w in (*words(s), BREAK)])
    return pieces


class Finder:
    """Where word sequences occur in one file's pieces (never across a BREAK)."""

    def __init__(self, pieces: list[list[str]]) -> None:
        self.words: list[str] = []
        for piece in pieces:
            self.words += [*piece, BREAK]
        self.at: dict[str, list[int]] = {}
        self._shingles: dict[int, set[tuple[str, ...]]] = {}
        for i, w in enumerate(self.words):
            if w != BREAK:
                self.at.setdefault(w, []).append(i)

    def has(self, seq: tuple[str, ...]) -> bool:
        if not seq:
            return False
        counts = []
        for offset, w in enumerate(seq):
            spots = self.at.get(w)
            if not spots:
                return False
            counts.append((len(spots), offset, spots))
        _, offset, spots = min(counts)
        n = len(seq)
        for i in spots:
            start = i - offset
            if start >= 0 and tuple(self.words[start: start + n]) == seq:
                return True
        return False

    def shingles(self, n: int) -> set[tuple[str, ...]]:
        """Every run of `n` words within one piece (computed once per n)."""
        if n not in self._shingles:
            w = self.words
            grams = (tuple(w[i: i + n]) for i in range(len(w) - n + 1))
            self._shingles[n] = {gram for gram in grams if BREAK not in gram}
        return self._shingles[n]
