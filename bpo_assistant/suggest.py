"""「もしかして」: the bank and curated questions nearest to what the user is typing.

Ranked by e5 similarity to the typed text, with a bonus for questions that contain it literally (someone who
typed 「BPOって」 expects questions that start that way). One embedding per call (~25 ms), so the chat debounces.
"""

from __future__ import annotations

from .knowledge import Knowledge
from .text import detect_lang, normalize

MIN_CHARS = 2
LITERAL_BONUS = 0.05  # cosines of BPO questions sit in 0.90–0.97: a literal match outranks a look-alike


def suggest(kb: Knowledge, embedder, text: str, lang: str | None = None, k: int = 5) -> list[str]:
    typed = normalize(text or "").strip()
    if len(typed) < MIN_CHARS or not len(kb.questions):
        return []
    lang = lang or detect_lang(typed)
    qvec = embedder.queries([typed])[0]
    sims = kb.question_vectors @ qvec
    key = typed.lower()
    scored = []
    for i, row in enumerate(kb.questions):
        if row.lang != lang or row.kind == "heading":
            continue
        literal = key in kb.question_keys[i]
        scored.append((float(sims[i]) + (LITERAL_BONUS if literal else 0.0), row.text))
    scored.sort(key=lambda p: -p[0])
    out: dict[str, str] = {}  # NFKC form → the question as written
    for _, q in scored:
        form = normalize(q)
        if form != typed:
            out.setdefault(form, q)
        if len(out) >= k:
            break
    return list(out.values())
