"""The learner's Jupyter serves the start page with its progress recomputed each time it is opened.

`make lab` renders workspace/START-HERE.ipynb once (autograder/workspace.py); a notebook's outputs are then a
snapshot, so a lab checked, a quiz or exam taken or an `assess` run afterwards would not show until the next
`make lab`. This contents manager (set as ServerApp.contents_manager_class in the learner's Jupyter config) reads
the page as Jupyter's default manager does and, for workspace/START-HERE.ipynb only, replaces the outputs of the
two progress cells with what the records say now. No kernel runs: the records are small JSON files
(autograder.progress) and the plot is drawn here without pyplot. If anything fails the page is served as stored.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

START_PAGE = "workspace/START-HERE.ipynb"
# the start page's progress cells, found by their code (modules/START-HERE.ipynb)
TABLE_CELL = "startpage.show_progress(root)"
TEXT_CELL = "startpage.progress_text(root)"


def _png(root: Path) -> str | None:
    try:
        from matplotlib.figure import Figure

        from autograder.startpage import plot_progress

        fig = plot_progress(root, Figure(figsize=(6, 2.2)))
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        return base64.b64encode(buf.getvalue()).decode("ascii")
    except Exception:  # noqa: BLE001 - no matplotlib or a drawing problem: the table alone still tells it all
        return None


def progress_outputs(root: Path) -> dict[str, list[dict[str, Any]]]:
    """cell code -> its outputs as nbformat 4 dicts, as running the cell would make them now."""
    from autograder.startpage import progress_html, progress_text

    table = [{"output_type": "display_data", "metadata": {},
              "data": {"text/html": progress_html(root), "text/plain": "<progress table>"}}]
    png = _png(root)
    if png:
        table.append({"output_type": "display_data", "metadata": {},
                      "data": {"image/png": png, "text/plain": "<Figure: your progress>"}})
    text = [{"output_type": "stream", "name": "stdout", "text": progress_text(root) + "\n"}]
    return {TABLE_CELL: table, TEXT_CELL: text}


def refresh(notebook: Any, root: Path) -> bool:
    """Replace the progress cells' outputs in a notebook model (nbformat dict); True when any was found."""
    outputs = progress_outputs(root)
    found = False
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source") or "")
        for code, fresh in outputs.items():
            if code in source:
                cell["outputs"] = fresh
                found = True
    return found


class StartPageContentsManager(AsyncLargeFileManager):
    """Jupyter's default contents manager, plus the start page's progress recomputed on every open."""

    async def get(self, path: str, content: bool = True, type: str | None = None, format: str | None = None,
                  require_hash: bool = False) -> dict[str, Any]:
        model = await super().get(path, content=content, type=type, format=format, require_hash=require_hash)
        if content and model.get("type") == "notebook" and path.strip("/") == START_PAGE:
            try:
                refresh(model["content"], Path(self.root_dir))
            except Exception as exc:  # noqa: BLE001 - the stored page is still a page
                self.log.warning("start page: progress not refreshed (%s: %s)", exc.__class__.__name__, exc)
        return model
