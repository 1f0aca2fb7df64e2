"""Load one source file into a SourceDoc: our kb Markdown, other Markdown, plain text, HTML, PDF, DOCX.

Every failure is a LoadError naming the file and one specific reason, so the ingest report can tell the
user what to fix; the pipeline records it and carries on with the other files.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

from bpo_assistant.kbfiles import KB_LANGS, KbFormatError, load_markdown
from bpo_assistant.limits import FileProblem, Limits, decode_text, doc_problem, over, read_bytes
from bpo_assistant.settings import Settings
from bpo_assistant.text import detect_lang, normalize
from bpo_assistant.types import SourceDoc, content_hash

from .headings import Block, plain_text_blocks, to_sections

SUPPORTED = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")


class LoadError(Exception):
    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = str(path), reason


def is_kb_file(path: Path, kb_dir: Path) -> bool:
    """kb/<lang>/<id>.md: the only files held to the full front-matter contract of docs/kb-format.md."""
    # Where the file sits, not where a symlink points (resolving the file itself raises on a symlink loop).
    parent = Path(path).absolute().parent.resolve()
    return Path(path).suffix == ".md" and parent.name in KB_LANGS and parent.parent == Path(kb_dir).resolve()


def doc_id_for(path: Path) -> str:
    """Readable id from an ASCII file stem; otherwise a hash of the stem, so editing the file keeps its id."""
    stem = normalize(Path(path).stem)
    if stem.isascii():
        slug = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
        if slug:
            return slug
    return f"doc-{content_hash(stem, 10)}"


def load_file(path: Path, settings: Settings) -> SourceDoc:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(path, f"unsupported file type {suffix or '(no extension)'!r}; supported: {' '.join(SUPPORTED)}")
    limits = Limits.of(settings)
    try:
        data = read_bytes(path, limits)
        if suffix == ".pdf":
            doc = _load_pdf(path, data, limits)
        elif suffix == ".docx":
            doc = _load_docx(path, data, limits)
        else:
            text = decode_text(path, data)
            if suffix in (".md", ".markdown"):
                doc = _load_markdown(path, text, settings, limits)
            elif suffix == ".txt":
                doc = _from_blocks(path, plain_text_blocks(normalize(text)))
            else:
                doc = _load_html(path, text)
    except FileProblem as exc:
        raise LoadError(path, exc.reason) from None
    if not any(s.text.strip() for s in doc.sections):
        raise LoadError(path, "no text: only headings, no body text")
    problem = doc_problem(doc.sections, limits)
    if problem:
        raise LoadError(path, problem)
    return doc


def _from_blocks(path: Path, blocks: list[Block], title: str | None = None) -> SourceDoc:
    body = "\n".join(line for _, lines in blocks for line in lines)
    if not body.strip():
        raise LoadError(path, "no text: nothing but headings or markup")
    lang = detect_lang(body)
    first_heading = next((h for h, _ in blocks if h), None)
    return SourceDoc(
        id=doc_id_for(path), title=title or first_heading or path.stem, lang=lang, topic="general",
        path=str(path), sections=tuple(to_sections(blocks, lang)),
    )


def _load_markdown(path: Path, text: str, settings: Settings, limits: Limits) -> SourceDoc:
    kb = is_kb_file(path, settings.kb_dir)
    if kb or text.startswith("---"):
        try:
            # Outside kb/<lang>/ only id/title/lang are required: a team's notes need no reviewer or owner.
            return load_markdown(path, require_all_fields=kb, limits=limits, text=text)
        except KbFormatError as exc:
            raise LoadError(path, f"line {exc.line}: {exc.message}") from None
    return _from_blocks(path, _markdown_blocks(normalize(text)))


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MD_INLINE = [(re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""), (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
              (re.compile(r"(\*\*|__|`)"), "")]


def _markdown_blocks(text: str) -> list[Block]:
    """Markdown without our front matter: # to ### start sections, deeper headings stay as body lines."""
    blocks: list[Block] = [(None, [])]
    for line in text.splitlines():
        if line.strip().startswith("```"):
            continue
        m = _MD_HEADING.match(line)
        if m and len(m[1]) <= 3:
            blocks.append((m[2], []))
            continue
        line = m[2] if m else line
        for pattern, repl in _MD_INLINE:
            line = pattern.sub(repl, line)
        if line.strip():
            blocks[-1][1].append(line.strip())
    return blocks


def _load_pdf(path: Path, data: bytes, limits: Limits) -> SourceDoc:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError(path, "encrypted PDF: remove the password before ingesting")
        if len(reader.pages) > limits.pdf_pages:  # counted from the page tree, before any page is decoded
            raise LoadError(path, "PDF has " + over(len(reader.pages), "pages", limits.pdf_pages, "BPO_MAX_PDF_PAGES"))
        pages = []
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            if sum(map(len, pages)) > limits.doc_chars:  # stop extracting early: a huge PDF costs time per page
                raise LoadError(path, "PDF text is " + over(sum(map(len, pages)), "characters", limits.doc_chars,
                                                            "BPO_MAX_DOC_CHARS") + " (counted so far)")
    except LoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types for damaged files
        raise LoadError(path, f"not a readable PDF: {exc}") from None
    text = normalize("\n".join(pages))
    if not text.strip():
        raise LoadError(path, f"no text: {len(pages)} page(s) without extractable text (scanned? OCR is not supported)")
    # PDFs carry no heading markup, so pages go through the same heuristic as plain text.
    return _from_blocks(path, plain_text_blocks(text))


def _check_zip(path: Path, data: bytes, limits: Limits) -> None:
    """A DOCX is a zip, and python-docx unpacks every part into memory: sum the sizes the zip declares before
    unpacking anything (zipfile never yields more than a member's declared size, so a lying header fails the
    CRC check instead of filling memory)."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise LoadError(path, f"not a readable DOCX (Word 2007+) file: {exc}") from None
    total = sum(m.file_size for m in members)
    if total > limits.unzipped_bytes:
        raise LoadError(path, "DOCX unzips to " + over(total, "bytes", limits.unzipped_bytes, "BPO_MAX_UNZIPPED_BYTES")
                        + f" ({len(data):,} bytes on disk)")


def _load_docx(path: Path, data: bytes, limits: Limits) -> SourceDoc:
    import docx
    from docx.text.paragraph import Paragraph

    _check_zip(path, data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - zip, XML and package errors alike mean "not a docx"
        raise LoadError(path, f"not a readable DOCX (Word 2007+) file: {exc}") from None
    blocks: list[Block] = [(None, [])]
    title = None
    for item in document.iter_inner_content():
        if isinstance(item, Paragraph):
            text = normalize(item.text).strip()
            style = (item.style.name if item.style is not None else "") or ""
            if not text:
                continue
            if style == "Title":
                title = title or text
            elif style.lower().startswith("heading"):
                blocks.append((text, []))
            else:
                blocks[-1][1].append(text)
        else:  # a table: one line per row, so a row's cells stay together in one sentence
            for row in item.rows:
                cells = list(dict.fromkeys(normalize(c.text).strip() for c in row.cells))
                line = " | ".join(c for c in cells if c)
                if line:
                    blocks[-1][1].append(line)
    return _from_blocks(path, blocks, title)


_HTML_DROP = ("script", "style", "noscript", "template", "svg", "nav", "form", "iframe")
_HTML_BLOCKS = ("p", "div", "li", "tr", "pre", "blockquote", "section", "article", "main", "ul", "ol", "table",
                "dd", "dt", "h4", "h5", "h6", "figcaption", "header", "footer", "aside", "td", "th")
_MARK = "\ue000"  # private-use character: marks a heading line through get_text()
_CJK_SPACE = re.compile(r"(?<=[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]) (?=[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef])")


def _load_html(path: Path, text: str) -> SourceDoc:
    from bs4 import BeautifulSoup, Comment

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    page_title = soup.title.get_text(" ", strip=True) if soup.title else None
    if soup.title:
        soup.title.decompose()
    # Source line breaks inside a paragraph are formatting, not sentence ends: collapse them first.
    for node in list(soup.find_all(string=True)):
        if node.find_parent("pre") is None:
            node.replace_with(re.sub(r"\s+", " ", str(node)))
    for h in soup.find_all(["h1", "h2", "h3"]):
        h.replace_with(f"\n{_MARK}{h.get_text(' ', strip=True)}\n")
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    blocks: list[Block] = [(None, [])]
    for raw in (soup.body or soup).get_text().split("\n"):
        heading = raw.strip().startswith(_MARK)
        line = _CJK_SPACE.sub("", re.sub(r"[ \t]+", " ", normalize(raw.replace(_MARK, "")))).strip()
        if heading and line:
            blocks.append((line, []))
        elif line:
            blocks[-1][1].append(line)
    title = next((h for h, _ in blocks if h), None) or (normalize(page_title) if page_title else None)
    return _from_blocks(path, blocks, title)
