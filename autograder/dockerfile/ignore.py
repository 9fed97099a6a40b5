"""Which paths a .dockerignore keeps out of the build context, by Docker's rules.

Docker's semantics (docs.docker.com, "Dockerignore files"): one pattern a line, `#` comments, Go filepath.Match
globs plus `**` for any number of folders, a leading `/` ignored, `!` re-including; the LAST matching line decides.
A pattern that matches a folder excludes everything inside it.
Hand-written on purpose: gitignore matchers (pathspec) match `.env` at any depth where Docker means only the root,
and the Docker SDK's PatternMatcher is not a course dependency (docs/deploy-checks.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                out.append(f"[{'^' + body[1:] if body.startswith('^') else body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    # A match on a folder covers what is inside it.
    return re.compile("".join(out) + "(?:/.*)?")


@dataclass
class DockerIgnore:
    rules: list[tuple[bool, re.Pattern[str], str]]  # (re-include?, regex, original line)

    @classmethod
    def from_text(cls, text: str) -> DockerIgnore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:].strip() if negate else line
            pattern = re.sub(r"/+", "/", pattern).strip("/")
            pattern = pattern.removeprefix("./")
            if pattern:
                rules.append((negate, _glob_to_regex(pattern), line))
        return cls(rules)

    @property
    def patterns(self) -> list[str]:
        return [line for _, _, line in self.rules]

    def excludes(self, path: str) -> bool:
        """True when `path` (relative to the context, `/`-separated) is left out of the build context."""
        path = path.strip("/")
        excluded = False
        for negate, regex, _ in self.rules:
            if regex.fullmatch(path):
                excluded = not negate
        return excluded
