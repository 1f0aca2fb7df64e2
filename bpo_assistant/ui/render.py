"""Pure rendering of answers for the chat: Markdown body, badges, sources block, streaming pieces.

Everything that comes from a user or from the kb is made inert here, before Gradio's own sanitiser sees it:
text placed in our HTML goes through html.escape; Markdown from the kb or the assistant keeps its Markdown
(tables, lists, [n] markers) but loses raw HTML, images, bare-URL auto-links and every link that is not written
as a Markdown link to http(s) (`md_inert`); a user's message loses all Markdown (`escape_user_text`). Every
transform is exactly reversible with html.unescape, so the plain text can be recovered from a rendered message
(plain_answer, which also unwraps the links cited [n] markers get).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote

from bpo_assistant import guard
from bpo_assistant.text import normalize, split_sentences
from bpo_assistant.types import Answer, Citation

from .labels import t

SectionLookup = Callable[[str, str, str], str]  # (lang, doc_id, section_id) -> section text ("" if unknown)

BADGES_OPEN = '<div class="bpo-badges">'
EXTRA_OPEN = '<div class="bpo-extra">'
_BULLET = re.compile(r"^\s*(?:[-*・•]|\d+[.)])\s+")
# A stream piece ends after a sentence end, a line break, or an English ". "; trailing [n] markers stay with it.
# The assistant ends cited answers with a plain "出典:/Sources:" list; the UI shows its own sources block instead.
_SOURCE_LIST = re.compile(r"\n*[ \t]*(?:出典|Sources)[:：][ \t]*\n(?:[ \t]*[-*][ \t]*\[\d+\][^\n]*(?:\n|$))+\s*$")
_PIECE = re.compile(r"[^。！？\n]*?(?:[。！？]|[.!?](?=\s)|\n|$)(?:\s*\[\d+\])*", re.S)


def esc(text: object) -> str:
    """Escape for HTML text and attribute values."""
    return html.escape("" if text is None else str(text), quote=True)


# A kb link is kept only in this form: [label](http(s)://…), not preceded by "!" (an image).
_MD_LINK = re.compile(r"(?<!!)\[([^\[\]\n]*)\]\((https?://[^\s()<>\"'`]+)\)", re.IGNORECASE)
# What marked (Gradio's Markdown) would turn into a link on its own: bare URLs, www. names, e-mail addresses,
# and reference definitions (「[1]: url」 would turn every [1] marker into a link).
_AUTOLINK = re.compile(r"\b(?:https?|ftp)(:)(?=//)|\bwww(\.)|(?<=[\w.+-])(@)(?=[\w-])|^ {0,3}\[[^\]\n]*\](:)",
                       re.IGNORECASE | re.MULTILINE)


def _entity(ch: str) -> str:
    return f"&#{ord(ch)};"


def _unlink(m: re.Match) -> str:
    """The match with its one linking character (the group that matched) as a character reference."""
    g = next(i for i in range(1, 5) if m.group(i) is not None)
    start, end = m.start(g) - m.start(), m.end(g) - m.start()
    whole = m.group(0)
    return whole[:start] + _entity(whole[start:end]) + whole[end:]


def _defang(text: str) -> str:
    s = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("![", "!&#91;").replace("](", "]&#40;")
    return _AUTOLINK.sub(_unlink, s)


def md_inert(text: str) -> str:
    """Markdown with no raw HTML, no images, no auto-linked URLs and no links but [label](http(s)://…).

    `&` is escaped first, so html.unescape(md_inert(s)) == s for every s.
    """
    s, out, pos = text or "", [], 0
    for m in _MD_LINK.finditer(s):
        out.append(_defang(s[pos:m.start()]))
        url = m.group(2).replace("&", "&amp;")
        out.append(f"[{_defang(m.group(1))}]({url})")
        pos = m.end()
    out.append(_defang(s[pos:]))
    return "".join(out)


def md_inert_keep_quotes(text: str) -> str:
    """md_inert but keeps a leading '>' (Markdown block quote) working."""
    return re.sub(r"(?m)^&gt;", ">", md_inert(text))


def display_body(text: str) -> str:
    """The answer text as shown: without the trailing plain source list (the sources block replaces it)."""
    return _SOURCE_LIST.sub("", text or "").rstrip()


# A cited [n] in the answer body: a link that the page script (cite_links.py) turns into "open this section in
# the Knowledge tab". Only markers of the answer's own citations get one.
_MARKER = re.compile(r"\[(\d+)\]")
_CITE_LINK = re.compile(r'<a class="bpo-cite"[^>]*>(\[\d+\])</a>')


CITE_HREF = "#bpo-cite/"


def cite_link(c: Citation) -> str:
    """The target travels in the href (#bpo-cite/lang/doc/section, each part URL-quoted): Gradio's sanitiser keeps
    an in-page href, class and title on a link, and drops data attributes."""
    target = "/".join(quote(x or "", safe="") for x in (c.lang, c.doc_id, c.section_id))
    return f'<a class="bpo-cite" href="{CITE_HREF}{esc(target)}" title="{esc(c.label)}">[{int(c.n)}]</a>'


def link_markers(body: str, citations: Iterable[Citation]) -> str:
    """`body` (already inert Markdown) with each [n] of a citation in `citations` as its cite_link."""
    by_n = {int(c.n): c for c in citations}
    if not by_n:
        return body
    return _MARKER.sub(lambda m: cite_link(by_n[int(m.group(1))]) if int(m.group(1)) in by_n else m.group(0), body)


def plain_answer(content: str) -> str:
    """The assistant's own answer text from a rendered chat message (badges, sources and marker links removed)."""
    s = _CITE_LINK.sub(r"\1", content or "")
    if s.startswith(BADGES_OPEN):
        end = s.find("</div>\n\n")
        s = s[end + len("</div>\n\n"):] if end >= 0 else s
    cut = s.find("\n\n" + EXTRA_OPEN)
    if cut >= 0:
        s = s[:cut]
    return html.unescape(s).strip()


def render_badges(answer: Answer) -> str:
    lang = answer.lang
    badges = []
    if answer.curated:
        badges.append(f'<span class="bpo-badge bpo-verified">✔ {esc(t(lang, "verified"))}</span>')
    if answer.stale:
        badges.append(f'<span class="bpo-badge bpo-stale">⚠ {esc(t(lang, "stale"))}</span>')
    return BADGES_OPEN + " ".join(badges) + "</div>" if badges else ""


def _letters(s: str) -> str:
    """Only letters and digits (NFKC, lower case): what tells two queries apart for a reader."""
    return "".join(ch for ch in normalize(s or "").lower() if unicodedata.category(ch)[0] in "LN")


# An instruction to print something (「…」と出力して, "say X"): the query line must never show one, even one the
# query path did not recognise as an injection. Stricter than guard._OVERRIDE, because a hidden line costs nothing.
_DIRECTIVE = re.compile(
    r"(と|って)\s*(だけ|のみ)?\s*(書いて|出力|表示|言って|返して|答えて|回答して)|"
    r"\b(print|output|say|write|reply|respond|repeat|echo)\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r"[「『\"'“‘`]([^」』\"'”’`]{1,200})[」』\"'”’`]")


def _removed_parts(question: str) -> list[str]:
    """What the query path drops from the question: its instruction sentences, and what they ask to print."""
    parts = []
    for sent in split_sentences(normalize(question or "")):
        if guard.clean_question(sent, 10**6).override or _DIRECTIVE.search(sent):
            parts.append(sent)
            parts.extend(_QUOTED.findall(sent))
    return [p for p in (_letters(x) for x in parts) if p]


def query_line(answer: Answer, question: str) -> str:
    """The standalone query to show under the answer, or "" when it tells the reader nothing new or carries
    anything the user asked to have printed.

    Shown only when it adds to the question (a follow-up rewritten with the earlier subject): a query that is the
    question, or the question with parts removed, is not shown; neither is one holding an instruction or any text
    of the instruction sentences removed from the question."""
    q = (answer.standalone_query or "").strip()
    letters, asked = _letters(q), _letters(question)
    if not letters or letters in asked:
        return ""
    if guard.clean_question(q, 10**6).override or _DIRECTIVE.search(normalize(q)):
        return ""
    if any(part in letters for part in _removed_parts(question)):
        return ""
    return q


def render_query(answer: Answer, question: str) -> str:
    q = query_line(answer, question)
    if not q:
        return ""
    label = "検索クエリ" if answer.lang != "en" else "Search query"
    return f'<div class="bpo-query">{label}: <span class="bpo-query-text">{esc(q)}</span></div>'


def render_notice(answer: Answer) -> str:
    return f'<div class="bpo-notice">※ {esc(answer.notice)}</div>' if answer.notice else ""


def highlight_section(section_text: str, quoted: str) -> tuple[str, int]:
    """The section as HTML lines with the quoted sentences wrapped in <mark>; returns (html, marks)."""
    wanted = [normalize(s) for s in split_sentences(quoted or "")]
    whole = normalize(quoted or "")
    lines, marks = [], 0
    for raw in (section_text or "").splitlines():
        if not raw.strip():
            continue
        bullet = bool(_BULLET.match(raw))
        line = _BULLET.sub("", raw).strip()
        out, pos = [], 0
        for sent in split_sentences(line):
            i = line.find(sent, pos)
            if i < 0:
                continue
            out.append(esc(line[pos:i]))
            ns = normalize(sent)
            if ns and (ns in wanted or (len(ns) >= 8 and ns in whole)):
                out.append(f"<mark>{esc(sent)}</mark>")
                marks += 1
            else:
                out.append(esc(sent))
            pos = i + len(sent)
        out.append(esc(line[pos:]))
        cls = "bpo-line bpo-bullet" if bullet else "bpo-line"
        lines.append(f'<div class="{cls}">{"• " if bullet else ""}{"".join(out)}</div>')
    return "".join(lines), marks


def render_citation(c: Citation, section_text: str) -> str:
    body, marks = highlight_section(section_text, c.text)
    if not marks:  # section text unknown or reworded: show the quote itself
        body = f'<div class="bpo-line"><mark>{esc(c.text)}</mark></div>'
    title = f"[{c.n}] {c.title} › {c.section}"
    return (
        f'<div class="bpo-source" data-n="{int(c.n)}"><div class="bpo-source-title">{esc(title)}</div>'
        f'<div class="bpo-source-text">{body}</div></div>'
    )


def render_sources(citations: Iterable[Citation], lang: str, lookup: SectionLookup | None = None,
                   open_: bool = False) -> str:
    """A collapsible <details> block listing "[n] title › section" with the quoted sentences highlighted."""
    items = []
    for c in citations:
        text = ""
        if lookup is not None:
            try:
                text = lookup(c.lang or lang, c.doc_id, c.section_id) or ""
            except Exception:  # noqa: BLE001 - a missing section must not break the answer
                text = ""
        items.append(render_citation(c, text))
    if not items:
        return ""
    summary = f"{t(lang, 'sources')} ({len(items)})"
    return f'<details class="bpo-sources"{" open" if open_ else ""}><summary>{esc(summary)}</summary>{"".join(items)}</details>'


def render_answer(answer: Answer, question: str, lookup: SectionLookup | None = None) -> str:
    """The full chat message: badges, the Markdown answer with its [n] markers, then the extras block."""
    head = render_badges(answer)
    body = link_markers(md_inert_keep_quotes(display_body(answer.text) if answer.citations else answer.text),
                        answer.citations)
    extras = render_query(answer, question) + render_notice(answer) + render_sources(
        answer.citations, answer.lang, lookup
    )
    out = f"{head}\n\n{body}" if head else body
    return f"{out}\n\n{EXTRA_OPEN}{extras}</div>" if extras else out


def stream_pieces(text: str) -> list[str]:
    """Cut an answer into sentence-sized pieces (table rows and list items are one piece each)."""
    pieces = [m.group(0) for m in _PIECE.finditer(text or "") if m.group(0)]
    return pieces or [text or ""]


def group_pieces(pieces: list[str], max_steps: int) -> list[str]:
    """Join consecutive pieces so there are at most max_steps of them (order and text kept)."""
    if max_steps < 1 or len(pieces) <= max_steps:
        return pieces
    size = -(-len(pieces) // max_steps)
    return ["".join(pieces[i:i + size]) for i in range(0, len(pieces), size)]


def stream_answer(answer: Answer, question: str, lookup: SectionLookup | None = None,
                  max_steps: int = 4) -> Iterator[str]:
    """Progressive renderings: badges + growing answer text, then the final message with its sources.

    At most `max_steps` renderings: sentences are grouped so that a long answer or a table costs the server a few
    streamed updates, not one per sentence.
    """
    head = render_badges(answer)
    shown = ""
    pieces = group_pieces(stream_pieces(display_body(answer.text) if answer.citations else answer.text), max_steps)
    for piece in pieces[:-1]:
        shown += piece
        body = link_markers(md_inert_keep_quotes(shown), answer.citations)
        yield f"{head}\n\n{body}" if head else body
    yield render_answer(answer, question, lookup)


def message_text(content: object) -> str:
    """Text of a chat message's content in any of Gradio's shapes (str, dict, list of text blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        if content.get("type") == "text" or "text" in content:
            return str(content.get("text") or "")
        return ""
    if isinstance(content, (list, tuple)):
        return "\n".join(x for x in (message_text(c) for c in content) if x)
    return ""


def history_for_assistant(history: Iterable[dict] | None) -> list[dict]:
    """Chat history as plain {"role", "content": str} turns, our rendering stripped from assistant turns."""
    out = []
    for msg in history or []:
        role = msg.get("role") if isinstance(msg, dict) else getattr(msg, "role", None)
        content = msg.get("content") if isinstance(msg, dict) else getattr(msg, "content", "")
        if role not in ("user", "assistant"):
            continue
        text = message_text(content)
        if role == "assistant":
            text = plain_answer(text)
        if text.strip():
            out.append({"role": role, "content": text})
    return out


# Every ASCII punctuation character can start Markdown (emphasis, links, lists, tables, headings, code, auto-links
# through ":" "." "@"); as a character reference it is plain text to marked and to the browser alike.
_USER_MARKUP = re.compile(r"[!-/:-@\[-`{-~]|^[ \t]+", re.MULTILINE)


def escape_user_text(text: str) -> str:
    """User messages show exactly as typed: no HTML, no Markdown, no auto-links; line breaks kept, leading
    indentation kept as text (not a code block). Reversible with html.unescape."""
    return _USER_MARKUP.sub(lambda m: "".join(_entity(c) for c in m.group(0)), text or "")


def unescape_user_text(text: str) -> str:
    return html.unescape(text or "")
