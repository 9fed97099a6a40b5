"""The assessment's result for people (a rubric table, a Markdown report with a latency histogram) and for machines.

Every check here is the base `Check`. The JSON readers of `assess --json` (scripts, the deploy checks' tests) read
a requirement's checks as {name, passed, detail}, the record the probes once had: `check_dict` writes them so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.assess.breakdown import Breakdown
from autograder.assess.latency import BUSY_SHARE, LIMIT_MS
from autograder.assess.probes import Criterion, Evidence
from autograder.reports import format_table
from mlinfra.base.results import FAILED, INFO, PASSED, Check, ReportOutcome

PASS_RULE = "passes when every requirement passes (all checks, 100 of 100 points)"
PACK_PASS_RULE = "passes when every requirement and every README section passes (120 of 120 points)"


@dataclass
class Assessment:
    target: dict[str, Any]
    criteria: list[Criterion]
    evidence: Evidence = field(default_factory=Evidence)
    startup_seconds: float | None = None
    server_log: list[str] = field(default_factory=list)
    breakdown: Breakdown | None = None  # where the latency goes (informational)
    handin: list[Check] = field(default_factory=list)  # a hand-in's README sections (scored) and notes (info)
    status: str = "completed"  # the Outcome's status: "unreadable" for a hand-in that could not be read
    stopped: str = ""  # why the assessment was stopped before its end (its time budget), else ""
    notes: list[str] = field(default_factory=list)  # for the reader (e.g. a hand-in's manifest that disagrees)

    @property
    def pass_rule(self) -> str:
        return PACK_PASS_RULE if self.handin else PASS_RULE

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.criteria) + sum(c.points for c in self.handin), 1)

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.criteria) + sum(c.max_points for c in self.handin)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria) and all(c.passed for c in self.handin)

    def next_step(self) -> str:
        if self.status == "unreadable":
            return f"Hand the practical in again with `.venv/bin/autograder submit practical`: {self.criteria[0].verdict}"
        if self.stopped:
            return f"Stopped: {self.stopped}; every request must be answered in full well within 30 s."
        failed = [c for c in self.criteria if not c.passed]
        readme = [c for c in self.handin if not c.passed]
        if not failed and not readme:
            return "All five requirements pass." + (" The README has every required section." if self.handin else "")
        if not failed:
            return f"Fix the README: {readme[0].message}; then run the same command again."
        return f"Fix requirement {failed[0].number} first, then run the same command again."


class AssessmentOutcome(ReportOutcome):
    """The assessment as an Outcome; its JSON also keeps the keys readers used before (criteria, latency, ...)."""


def to_outcome(result: Assessment) -> AssessmentOutcome:
    """One scored Check per requirement (and per README section of a hand-in), the breakdown as info Checks."""
    where = result.target.get("url", "")
    checks = [
        Check(f"{c.number}. {c.title}", PASSED if c.passed else FAILED, c.points, c.max_points, c.verdict, where)
        for c in result.criteria
    ]
    checks += result.handin
    checks += breakdown_checks(result.breakdown)
    return AssessmentOutcome(
        subject=result.target.get("description", where), checks=checks, notes=[*result.notes, result.next_step()],
        data=to_json(result), status=result.status,
    )


def ms(value: float) -> str:
    """Milliseconds with the digits that matter: 0.05, 2.31, 17.4."""
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def breakdown_checks(b: Breakdown | None) -> list[Check]:
    if b is None:
        return []
    if not b.measured:
        return [Check("where the latency goes", INFO, message=f"not measured: {b.reason}")]
    out = []
    for label, raw in b.raw_p50_ms.items():
        served = b.served_p50_ms.get(label)
        extra = f", service p50 {ms(served)} ms, +{ms(served - raw)} ms around it" if served is not None else ""
        out.append(Check(f"latency at {label}: model vs service", INFO,
                         message=f"raw forward p50 {ms(raw)} ms{extra}"))
    if b.throughput:
        rates = ", ".join(f"{c} client{'s' if c > 1 else ''} {r:.0f}/s" for c, r in b.throughput.items())
        out.append(Check("throughput", INFO, message=f"requests per second: {rates}"))
    return out


def breakdown_rows(b: Breakdown) -> list[list[str]]:
    rows = []
    for label, raw in b.raw_p50_ms.items():
        served = b.served_p50_ms.get(label)
        rows.append([label, ms(raw), "-" if served is None else ms(served),
                     "-" if served is None else f"+{ms(served - raw)}"])
    return rows


def throughput_line(b: Breakdown) -> str:
    return "Throughput: " + ", ".join(
        f"{c} client{'s' if c > 1 else ''} {r:.0f} req/s" + (f" ({b.errors[c]} failed)" if b.errors.get(c) else "")
        for c, r in b.throughput.items()
    )


def fmt_points(value: float) -> str:
    return f"{value:g}"


def rubric_rows(result: Assessment) -> list[list[str]]:
    return [
        [
            str(c.number),
            c.title,
            f"{fmt_points(c.points)}/{fmt_points(c.max_points)}",
            "PASS" if c.passed else "FAIL",
            c.verdict,
        ]
        for c in result.criteria
    ]


def latency_rows(result: Assessment) -> list[list[str]]:
    rows = []
    for size in result.evidence.latency:
        stats = size.stats()
        cells = [f"{stats[k]:.1f}" if stats[k] is not None else "-" for k in ("p50", "p95", "p99", "max")]
        rows.append([size.label, str(len(size.samples_ms)), *cells, "pass" if size.passed else "fail"])
    return rows


def shorten(text: str, width: int = 72) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def terminal(result: Assessment) -> str:
    lines = [f"Assessment of {result.target['description']}", ""]
    rows = [[*row[:4], shorten(row[4])] for row in rubric_rows(result)]
    lines.append(format_table(["#", "requirement", "points", "result", "verdict"], rows))
    failed = [(c.number, ch) for c in result.criteria for ch in c.checks if not ch.passed]
    if failed:
        lines += ["", "Failed checks:", *(f"  {n}. {ch.name}: {ch.message}" for n, ch in failed)]
    if result.evidence.latency:
        lines += [
            "",
            "Latency (ms, one keep-alive connection, after warm-up):",
            format_table(["size", "n", "p50", "p95", "p99", "max", "verdict"], latency_rows(result)),
        ]
    b = result.breakdown
    if b is not None:
        lines += ["", "Where the latency goes (information only, not scored):"]
        if b.measured:
            lines.append(format_table(["size", "raw forward p50", "service p50", "difference"], breakdown_rows(b)))
            if b.throughput:
                lines.append(throughput_line(b))
        else:
            lines.append(f"  not measured: {b.reason}")
    if result.handin:
        lines += ["", "Hand-in:"]
        lines += [f"  {'pass' if c.status == PASSED else 'info' if c.status == INFO else 'FAIL'}: {c.name}"
                  + (f" ({fmt_points(c.points)}/{fmt_points(c.max_points)})" if c.max_points else "")
                  + f": {c.message}" for c in result.handin]
    if result.server_log and not result.passed:
        lines += ["", "Last lines of the server's log:", *(f"  {line}" for line in result.server_log)]
    if result.stopped:
        lines += ["", f"Stopped: {result.stopped}."]
    lines += [f"Note: {note}" for note in result.notes]
    status = "PASSED" if result.passed else "NOT PASSED"
    score = f"Score {fmt_points(result.score)}/{fmt_points(result.max_score)}: {status}"
    lines += ["", f"{score} (the assessment {result.pass_rule}).", result.next_step()]
    return safe_lines(lines)


def safe_lines(lines: list[str]) -> str:
    """The lines joined, every control character in them shown as its escape: whatever a hand-in's text slipped
    past its source (a verdict quoting an answer, a file name), it cannot move, colour or conceal this output."""
    from mlinfra.base.output import printable

    return "\n".join(printable(line, keep_newlines=True) for line in lines)


def check_dict(check: Check) -> dict[str, Any]:
    """A requirement's check as `assess --json` has always written it."""
    return {"name": check.name, "passed": check.passed, "detail": check.message}


def to_json(result: Assessment) -> dict[str, Any]:
    from autograder.reports import to_jsonable

    latency = []
    for size in result.evidence.latency:
        latency.append(
            {
                "size": size.label,
                "passed": size.passed,
                "verdict": size.verdict,
                "rounds": size.rounds,
                "stopped_early": size.stopped_early,
                "error": size.error,
                "round_details": size.round_details,  # each round's p95 and the machine's calibration around it
                **size.stats(),
                "samples_ms": [round(s, 3) for s in size.samples_ms],
            }
        )
    conc = result.evidence.concurrency
    return {
        "passed": result.passed,
        "score": result.score,
        "max_score": result.max_score,
        "pass_rule": result.pass_rule,
        "target": result.target,
        "startup_seconds": result.startup_seconds,
        "latency_lock_wait_s": round(result.evidence.lock_wait_s, 2),
        "criteria": [
            {
                "number": c.number,
                "title": c.title,
                "points": c.points,
                "max_points": c.max_points,
                "passed": c.passed,
                "verdict": c.verdict,
                "checks": [check_dict(ch) for ch in c.checks],
            }
            for c in result.criteria
        ],
        "latency": {
            "limit_ms": LIMIT_MS,
            "sizes": latency,
            "concurrency": None
            if conc is None
            else {
                "clients": conc.clients,
                "requests": conc.requests,
                "errors": conc.errors,
                "seconds": round(conc.seconds, 3),
                "requests_per_second": round(conc.throughput, 1),
            },
        },
        "breakdown": None if result.breakdown is None else result.breakdown.to_dict(),
        "handin": to_jsonable(result.handin),
        "server_log": result.server_log,
        "next_step": result.next_step(),
    }


def histogram(result: Assessment, path: Path) -> Path | None:
    """A latency histogram per image size; None when nothing was timed."""
    sizes = [s for s in result.evidence.latency if s.samples_ms]
    if not sizes:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=100)
    for size in sizes:
        ax.hist(size.samples_ms, bins=30, alpha=0.6, label=f"{size.label} (n={len(size.samples_ms)})")
    top = max(max(s.samples_ms) for s in sizes)
    if top >= 0.5 * LIMIT_MS:
        ax.axvline(LIMIT_MS, color="crimson", linestyle="--", label=f"limit {LIMIT_MS:.0f} ms (p95)")
        title = "Latency per request"
    else:
        title = f"Latency per request (the {LIMIT_MS:.0f} ms limit is far to the right)"
    ax.set(title=title, xlabel="milliseconds", ylabel="requests")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown(result: Assessment, path: Path) -> Path:
    """Write the Markdown report to `path`, with its histogram beside it as `<stem>-latency.png`."""
    png = histogram(result, path.with_name(f"{path.stem}-latency.png"))
    status = "passed" if result.passed else "not passed"
    out = [
        f"# Practical assessment: {status}",
        "",
        f"Service: {md_text(result.target['description'])}  ",
        f"Score: **{fmt_points(result.score)} / {fmt_points(result.max_score)}**; the assessment {result.pass_rule}.",
        "",
        "| # | Requirement | Points | Result | Verdict |",
        "|---|---|---|---|---|",
    ]
    for row in rubric_rows(result):
        out.append("| " + " | ".join(cell_text(cell) for cell in row) + " |")
    out += ["", md_text(result.next_step()), "", "## Checks", ""]
    for c in result.criteria:
        out.append(f"### {c.number}. {c.title}: {fmt_points(c.points)}/{fmt_points(c.max_points)}")
        out.append("")
        out += [f"- {'pass' if ch.passed else '**FAIL**'}: {md_text(ch.name)}: {md_text(ch.message)}" for ch in c.checks]
        out.append("")
    if result.evidence.latency:
        intro = (
            "Milliseconds per request over one keep-alive connection, after warm-up; "
            f"requirement 4 passes on p95 < {LIMIT_MS:.0f} ms at every size."
        )
        out += [
            "## Latency",
            "",
            intro,
            "",
            "| Size | n | p50 | p95 | p99 | max | Verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        out += ["| " + " | ".join(row) + " |" for row in latency_rows(result)]
        out += ["", ("The machine, measured in the same run during each round (the share of a core a runnable "
                     "process could get, from the runnable tasks) and the load average. A round that failed on a "
                     f"busy machine (under {BUSY_SHARE:.0%} of a core) is not counted, unless the service's own "
                     "wait for a CPU cannot explain it, and is measured again when the machine is quieter."), ""]
        if result.evidence.lock_wait_s:
            out += [(f"Waited {result.evidence.lock_wait_s:.1f} s for another assessment's latency probes to "
                     "finish (one at a time on a machine)."), ""]
        out += ["| Size | Round | p95 (ms) | Passed | CPU share | Load (1 min) | Counted |", "|---|---|---|---|---|---|---|"]
        for size in result.evidence.latency:
            for n, r in enumerate(size.round_details, 1):
                cal: Any = r.get("calibration") or {}
                out.append(f"| {size.label} | {n} | {r['p95_ms']} | {'yes' if r['passed'] else 'no'} | "
                           f"{cal.get('cpu_share', 0):.0%} | {cal.get('load1', float('nan')):.1f} on "
                           f"{cal.get('cores', '?')} | {'yes' if r['counted'] else 'no (busy)'} |")
        conc = result.evidence.concurrency
        if conc is not None:
            out += [
                "",
                (
                    f"Concurrency: {conc.clients} clients, {conc.requests} requests, {len(conc.errors)} "
                    f"errors, {conc.throughput:.0f} requests/s."
                ),
            ]
        if png is not None:
            out += ["", f"![latency histogram]({png.name})"]
        out.append("")
    out += breakdown_markdown(result, path)
    if result.handin:
        out += ["## Hand-in", "", "| Item | Points | Result |", "|---|---|---|"]
        for c in result.handin:
            points = f"{fmt_points(c.points)}/{fmt_points(c.max_points)}" if c.max_points else "-"
            out.append(f"| {cell_text(c.name)} | {points} | {cell_text(c.message)} |")
        out.append("")
    if result.server_log and not result.passed:
        # The service wrote these lines: they stay inside the code block (a fence of theirs would end it).
        out += ["## Server log (last lines)", "", "```", *(line.replace("`", "'") for line in result.server_log),
                "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(safe_lines(out))
    return path


# Markdown's inline syntax a quoted text could use: links and images ([, ], !), emphasis, code spans, strikethrough,
# a table's column break, and the backslash that would undo an escape. < > & become entities: no HTML, no entity.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|~])")
_HTML_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def md_text(text: str) -> str:
    """Text that may quote a hand-in (a README heading, a model card field, an answer, a file name) as inert
    Markdown on one line: control characters and newlines shown as escapes, HTML special characters as entities,
    Markdown's link, image, emphasis and table syntax escaped. A previewer shows it as written and fetches
    nothing (red team 3: a heading `<img src=http://...>` was a beacon). Every quoted text in the report goes
    through here."""
    from mlinfra.base.output import printable

    shown = "".join(_HTML_SPECIAL.get(ch, ch) for ch in printable(text))
    return _MD_SPECIAL.sub(r"\\\1", shown)


def cell_text(text: str) -> str:
    """A Markdown table cell: md_text (so no column break either)."""
    return md_text(text)


def breakdown_markdown(result: Assessment, path: Path) -> list[str]:
    """The "where the latency goes" section: always present, saying why when it could not be measured."""
    from autograder.assess.breakdown import plot

    b = result.breakdown
    out = ["## Where the latency goes", "", "Information only: it does not change the score.", ""]
    if b is None:
        return [*out, "Not measured: the latency check did not run to the end.", ""]
    if not b.measured:
        return [*out, f"Not measured: {b.reason}", ""]
    out += [
        (f"The model in `{b.model_dir}` timed alone (batch 1; the faster of 1 and all-core torch threads, here {b.torch_threads}), beside the service's "
        "answer time for the same upload. The difference is HTTP, multipart parsing, decoding, resizing, "
        "queueing and JSON: what serving adds around the model, plus this assessment's own HTTP client, which "
        "builds each upload and parses each answer on the same machine (about 0.5 ms a request on the course's "
        "2-core development machine)."),
        "",
        "| Upload | Raw forward p50 (ms) | Service p50 (ms) | Difference (ms) |",
        "|---|---|---|---|",
        *("| " + " | ".join(row) + " |" for row in breakdown_rows(b)),
        "",
    ]
    png = plot(b, path.with_name(f"{path.stem}-throughput.png"))
    if png is not None:
        out += [throughput_line(b) + ". With one client the service is idle between requests; with more, a "
                "service that batches requests or runs one forward per core should serve more per second, never fewer.",
                "", f"![throughput]({png.name})", ""]
    return out
