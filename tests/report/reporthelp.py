"""Helpers of the report tests: real runs, and what a report page holds."""

from __future__ import annotations

from pathlib import Path

IRIS = {"data": {"source": "builtin:iris"}, "train": {"epochs": 3, "batch_size": 16}}


def fit_run(root: Path, name: str, overrides: list[str] | None = None, data: str = "builtin:iris",
            monitor: bool = True, tensorboard: bool = False, report: bool = True) -> Path:
    """A real run by ``trainwell.api.fit``, configured only through its config.

    ``fit`` itself attaches the doctor's monitor (``[doctor] monitor``), the TensorBoard logger
    (``[log] tensorboard``) and writes ``report.html`` at the end (``[log] report``).
    """
    from trainwell.api import fit

    cfg = {**IRIS, "data": {"source": data}, "runs_dir": str(root),
           "doctor": {"monitor": monitor, "monitor_every": 2},
           "log": {"tensorboard": tensorboard, "report": report}}
    fit(cfg, name=name, quiet=True, overrides=overrides)
    return root / name


class Page:
    """What a report page holds: section and figure ids, captions, image sources, links, scripts,
    tables."""

    def __init__(self, path: Path) -> None:
        from html.parser import HTMLParser

        self.text = path.read_text(encoding="utf-8")
        self.sections: list[str] = []
        self.figures: list[str] = []
        self.images: list[str] = []
        self.captions: dict[str, str] = {}  # figure id -> its image's alt text (the caption)
        self.links: list[str] = []
        self.scripts = 0
        self.tables: list[list[list[str]]] = []
        page = self

        class Parser(HTMLParser):
            cell: list[str] | None = None

            def handle_starttag(self, tag, attrs):  # noqa: ANN001
                a = dict(attrs)
                if tag == "section":
                    page.sections.append(a["id"])
                elif tag == "figure":
                    page.figures.append(a["id"])
                elif tag == "img":
                    page.images.append(a["src"])
                    if page.figures:
                        page.captions[page.figures[-1]] = a.get("alt", "")
                elif tag in ("a", "link"):
                    page.links.append(a.get("href", ""))
                elif tag == "script":
                    page.scripts += 1
                elif tag == "table":
                    page.tables.append([])
                elif tag == "tr":
                    page.tables[-1].append([])
                elif tag in ("td", "th"):
                    self.cell = []

            def handle_data(self, data):  # noqa: ANN001
                if self.cell is not None:
                    self.cell.append(data)

            def handle_endtag(self, tag):  # noqa: ANN001
                if tag in ("td", "th") and self.cell is not None:
                    page.tables[-1][-1].append("".join(self.cell))
                    self.cell = None

        Parser().feed(self.text)

    def table_with(self, header: str) -> list[list[str]]:
        """The first table whose first row holds ``header``."""
        for t in self.tables:
            if t and header in t[0]:
                return t
        raise AssertionError(f"no table with column {header!r}")


def assert_self_contained(page: Page, scripts: int = 0) -> None:
    """Everything inline: ``scripts`` inline scripts (none loaded from elsewhere), PNG data URIs,
    no link off the page."""
    import base64
    import re

    assert page.scripts == scripts
    assert not re.search(r"<script[^>]*\bsrc=", page.text)
    assert "http://" not in page.text and "https://" not in page.text
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for href in page.links:
        assert href.startswith(("#", "data:")) or not href.startswith(("http", "//")), href
