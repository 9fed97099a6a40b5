"""The assessment's result for people (a rubric table, a Markdown report with a latency histogram) and for machines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.assess.latency import LIMIT_MS
from autograder.assess.probes import Criterion, Evidence
from autograder.reports import format_table

PASS_RULE = "passes when every requirement passes (all checks, 100 of 100 points)"


@dataclass
class Assessment:
    target: dict[str, Any]
    criteria: list[Criterion]
    evidence: Evidence = field(default_factory=Evidence)
    startup_seconds: float | None = None
    server_log: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return round(sum(c.points for c in self.criteria), 1)

    @property
    def max_score(self) -> float:
        return sum(c.max_points for c in self.criteria)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.criteria)

    def next_step(self) -> str:
        failed = [c for c in self.criteria if not c.passed]
        if not failed:
            return "All five requirements pass."
        return f"Fix requirement {failed[0].number} first, then run the same command again."


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
        lines += ["", "Failed checks:", *(f"  {n}. {ch.name}: {ch.detail}" for n, ch in failed)]
    if result.evidence.latency:
        lines += [
            "",
            "Latency (ms, one keep-alive connection, after warm-up):",
            format_table(["size", "n", "p50", "p95", "p99", "max", "verdict"], latency_rows(result)),
        ]
    if result.server_log and not result.passed:
        lines += ["", "Last lines of the server's log:", *(f"  {line}" for line in result.server_log)]
    status = "PASSED" if result.passed else "NOT PASSED"
    score = f"Score {fmt_points(result.score)}/{fmt_points(result.max_score)}: {status}"
    lines += ["", f"{score} (the assessment {PASS_RULE}).", result.next_step()]
    return "\n".join(lines)


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
                **size.stats(),
                "samples_ms": [round(s, 3) for s in size.samples_ms],
            }
        )
    conc = result.evidence.concurrency
    return {
        "passed": result.passed,
        "score": result.score,
        "max_score": result.max_score,
        "pass_rule": PASS_RULE,
        "target": result.target,
        "startup_seconds": result.startup_seconds,
        "criteria": [
            {
                "number": c.number,
                "title": c.title,
                "points": c.points,
                "max_points": c.max_points,
                "passed": c.passed,
                "verdict": c.verdict,
                "checks": to_jsonable(c.checks),
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
        f"Service: {result.target['description']}  ",
        f"Score: **{fmt_points(result.score)} / {fmt_points(result.max_score)}**; the assessment {PASS_RULE}.",
        "",
        "| # | Requirement | Points | Result | Verdict |",
        "|---|---|---|---|---|",
    ]
    for row in rubric_rows(result):
        out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
    out += ["", result.next_step(), "", "## Checks", ""]
    for c in result.criteria:
        out.append(f"### {c.number}. {c.title}: {fmt_points(c.points)}/{fmt_points(c.max_points)}")
        out.append("")
        out += [f"- {'pass' if ch.passed else '**FAIL**'}: {ch.name}: {ch.detail}" for ch in c.checks]
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
    if result.server_log and not result.passed:
        out += ["## Server log (last lines)", "", "```", *result.server_log, "```", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))
    return path
