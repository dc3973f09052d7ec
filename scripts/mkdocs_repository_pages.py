"""mkdocs hook: the repository's Markdown files outside docs/ become pages of the site, from
their one source, with every relative link kept working.

The manual lives in docs/, but the README (the site's home page), ARCHITECTURE.md and the
files the pages link outside docs/ (the edge example, the benchmark results, the figures) live
elsewhere in the repository. This hook adds them to the site at their repository path
(README.md becomes index.md, docs/<page> becomes <page>) and rewrites each relative link,
which is written for GitHub (relative to the file in the repository), into the same target's
place in the site. A link to a file that does not exist is left as written, so that
``mkdocs build --strict`` reports it. Named in mkdocs.yml under ``hooks``.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[1]
DOCS = "docs"
HOME = "README.md"
ALWAYS_INCLUDED = (HOME, "ARCHITECTURE.md")
LINK = re.compile(r"(\]\()([^)\s]+)(\))")
CODE = re.compile(r"^(```|~~~).*?^\1|`[^`\n]*`", re.MULTILINE | re.DOTALL)
URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")


def site_path(repository_path: str) -> str:
    """Where a repository file lies in the site's sources: docs/<page> -> <page>,
    README.md -> index.md, any other file at its repository path."""
    if repository_path.startswith(DOCS + "/"):
        return repository_path[len(DOCS) + 1 :]
    return "index.md" if repository_path == HOME else repository_path


def _outside_code(markdown: str, rewrite) -> str:
    """``markdown`` with ``rewrite`` applied to the text outside code blocks and code spans."""
    pieces, last = [], 0
    for code in CODE.finditer(markdown):
        pieces += [rewrite(markdown[last : code.start()]), code.group(0)]
        last = code.end()
    return "".join([*pieces, rewrite(markdown[last:])])


def _linked_file(source: str, target: str) -> str | None:
    """The repository path of the file a relative link of ``source`` names, or None (a URL,
    an anchor in the same page, or no such file)."""
    path = target.partition("#")[0]
    if not path or URL.match(path) or path.startswith("/"):
        return None
    linked = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
    if linked.startswith("../") or not (ROOT / linked).is_file():
        return None
    return linked


def linked_repository_files(sources: list[str]) -> list[str]:
    """The files outside docs/ that ``sources`` (repository paths) link, and those that the
    linked Markdown files link in turn, with the always included ones."""
    found = [path for path in ALWAYS_INCLUDED if (ROOT / path).is_file()]
    queue = [*sources, *found]
    while queue:
        source = queue.pop()
        if not source.endswith(".md"):
            continue
        text = CODE.sub("", (ROOT / source).read_text(encoding="utf-8"))
        for _, target, _ in LINK.findall(text):
            linked = _linked_file(source, target)
            if linked and not linked.startswith(DOCS + "/") and linked not in found:
                found.append(linked)
                queue.append(linked)
    return sorted(found)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the repository's files outside docs/ that the manual links to the site."""
    pages = [f"{DOCS}/{file.src_uri}" for file in files if file.src_uri.endswith(".md")]
    for path in linked_repository_files(pages):
        uri = site_path(path)
        if files.get_file_from_path(uri) is not None:
            raise ValueError(f"docs/{uri} and the repository's {path} would be one page")
        files.append(File.generated(config, uri, abs_src_path=str(ROOT / path)))
    return files


def repository_path(page: Page, config: MkDocsConfig) -> str:
    """The repository path of a page's source file."""
    return Path(page.file.abs_src_path).resolve().relative_to(ROOT).as_posix()


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Each relative link, written relative to the page's repository file, made relative to
    the page's place in the site."""
    source = repository_path(page, config)
    here = posixpath.dirname(page.file.src_uri)

    def relink(match: re.Match) -> str:
        opening, target, closing = match.groups()
        linked = _linked_file(source, target)
        if linked is None:
            return match.group(0)
        _, hash_mark, fragment = target.partition("#")
        moved = posixpath.relpath(site_path(linked), here or ".")
        return f"{opening}{moved}{hash_mark}{fragment}{closing}"

    return _outside_code(markdown, lambda text: LINK.sub(relink, text))
