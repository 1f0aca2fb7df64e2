"""[n] in a chat answer opens the cited section in the Knowledge tab.

render.py turns each cited [n] into <a class="bpo-cite" href="#bpo-cite/lang/doc/section">. The page script
(CITE_CLICK_JS, run once at page load) catches a click on one and writes the target, as JSON, into a hidden
textbox (#bpo-kb-goto); that box's change event (app.py) switches to the Knowledge tab, selects the document and
shows it with a marker before the cited section (render_doc_at), and CITE_SCROLL_JS scrolls the marker into view.
A plain link cannot do this: the Knowledge tab is not a URL, and its document is chosen on the server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .labels import t
from .onboarding import render_doc
from .render import esc, md_inert

TARGET_ID = "bpo-kb-target"
MAX_FIELD = 200  # a doc or section id is a short slug; anything longer is not ours

CITE_CLICK_JS = r"""
() => {
  if (window.__bpoCiteLinks) return;
  window.__bpoCiteLinks = true;
  document.addEventListener("click", (ev) => {
    const a = ev.target && ev.target.closest ? ev.target.closest("a.bpo-cite") : null;
    if (!a) return;
    ev.preventDefault();
    ev.stopPropagation();
    const m = (a.getAttribute("href") || "").match(/^#bpo-cite\/([^/]*)\/([^/]*)\/([^/]*)$/);
    const box = document.querySelector("#bpo-kb-goto textarea, #bpo-kb-goto input");
    if (!m || !box) return;
    const part = (s) => { try { return decodeURIComponent(s); } catch (e) { return ""; } };
    // the time makes a second click on the same [n] a change too (the user may have browsed away meanwhile)
    const value = JSON.stringify({lang: part(m[1]), doc: part(m[2]), section: part(m[3]), at: Date.now()});
    const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(box), "value").set;
    setter.call(box, value);
    box.dispatchEvent(new Event("input", {bubbles: true}));
  }, true);
}
"""

CITE_SCROLL_JS = """
() => {
  const start = Date.now();
  const tick = () => {
    const el = document.getElementById("%s");
    if (el && el.offsetParent !== null) { el.scrollIntoView({block: "start"}); return; }
    if (Date.now() - start < 3000) setTimeout(tick, 100);
  };
  setTimeout(tick, 100);
}
""" % TARGET_ID


@dataclass(frozen=True)
class CiteTarget:
    lang: str
    doc_id: str
    section_id: str


def parse_target(value: object) -> CiteTarget | None:
    """The target the page script wrote, or None for anything else (an empty box, a hand-made value)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    fields = [data.get(k) for k in ("lang", "doc", "section")]
    if not all(isinstance(f, str) and 0 < len(f) <= MAX_FIELD for f in fields[1:]) or not isinstance(fields[0], str):
        return None
    return CiteTarget(fields[0][:8], fields[1], fields[2])


def render_doc_at(doc, lang: str, section_id: str, ui_lang: str) -> str:
    """The Knowledge tab's view of `doc` (onboarding.render_doc) with a marker just before the cited section;
    without the section, the document as it is."""
    text = render_doc(doc, lang)
    sections = list(getattr(doc, "sections", ()) or ())
    idx = next((i for i, s in enumerate(sections) if s.id == section_id), None)
    if idx is None:
        return text
    heading = f"\n### {md_inert(sections[idx].title)}\n"
    pos = -1
    for _ in range(1 + sum(1 for s in sections[:idx] if s.title == sections[idx].title)):
        pos = text.find(heading, pos + 1)
        if pos < 0:
            return text
    marker = f'<div id="{TARGET_ID}" class="bpo-kb-target">▶ {esc(t(ui_lang, "kb_cited"))}</div>\n\n'
    # after the heading's leading newline: the marker is an HTML block of its own, ended by the blank line
    return text[:pos + 1] + marker + text[pos + 1:]
