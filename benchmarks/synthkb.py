"""A synthetic kb of a given size for the scale benchmark: the real kb/ plus Japanese documents recombined from
the real kb's sentences, under new ids, in the kb/ja front-matter format (docs/kb-format.md).

The real kb stays in, so the glossary, curated answers and question bank still have their documents and the
questions asked are real questions; the synthetic documents are the bulk that a company's kb would add.
Every synthetic section is sized to one chunk, so the chunk count is known before ingest.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

from bpo_assistant.kbfiles import load_kb_docs, section_sentences
from bpo_assistant.ingest.chunking import chunk_document

SECTIONS_PER_DOC = 10
TOPICS = ("overview", "comparison", "operations", "benefits", "precautions", "vendor-selection", "contracts", "dx",
          "checklist")


@dataclass
class SynthKb:
    kb_dir: Path
    real_chunks: int
    synthetic_docs: list[Path]
    pool: list[tuple[str, str]]  # (section title, sentence) of every real Japanese sentence
    seed: int

    @property
    def expected_chunks(self) -> int:
        return self.real_chunks + sum(_sections_in(p) for p in self.synthetic_docs)


def build(target_chunks: int, out_dir: Path, chunk_size: int, overlap: int, root: Path, seed: int = 11) -> SynthKb:
    kb_dir = out_dir / "kb"
    shutil.copytree(root / "kb", kb_dir)
    docs, _ = load_kb_docs(kb_dir)
    real = sum(len(chunk_document(d, chunk_size, overlap)[0]) for d in docs.values())
    pool = [(s.title, t) for (lang, _), d in docs.items() if lang == "ja" for s in d.sections
            for t in section_sentences(s)]
    rng = random.Random(seed)
    paths, left, n = [], max(0, target_chunks - real), 0
    while left > 0:
        n += 1
        sections = min(SECTIONS_PER_DOC, left)
        path = kb_dir / "ja" / f"synth-{n:06d}.md"
        path.write_text(_document(f"synth-{n:06d}", sections, pool, rng, chunk_size), encoding="utf-8")
        paths.append(path)
        left -= sections
    return SynthKb(kb_dir, real, paths, pool, seed)


def edit_one(kb: SynthKb) -> Path:
    """Replace the first sentence of one synthetic document's first section (one chunk, one sentence change)."""
    path = kb.synthetic_docs[len(kb.synthetic_docs) // 2] if kb.synthetic_docs else kb.kb_dir / "ja/bpo-overview.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("## ")) + 2  # heading, blank line, sentence
    lines[at] = "編集後の文書では、委託先との定例会で業務手順の変更点を毎月確認します。"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _document(doc_id: str, sections: int, pool, rng: random.Random, chunk_size: int) -> str:
    head = [
        "---", f"id: {doc_id}", f"title: 業務委託ガイド {doc_id[6:]}", "lang: ja", f"topic: {rng.choice(TOPICS)}",
        "tags: [合成, ベンチマーク]", f"aliases: [合成文書{doc_id[6:]}]",
        "source:", '  title: "BPOとは?"', "  publisher: FPT", '  url: "https://fptsoftware.jp/"',
        "reviewed: 2026-11-26", "owner: benchmark", "---", "",
    ]
    body = []
    for j in range(1, sections + 1):
        picked = _sentences(pool, rng, chunk_size)
        body += [f"## {picked[0][0]} {{#part-{j}}}", "", *[t for _, t in picked], ""]
    return "\n".join(head + body)


def _sentences(pool, rng: random.Random, chunk_size: int) -> list[tuple[str, str]]:
    """Two to four real sentences whose chunk stays under chunk_size (room left for the separators)."""
    while True:
        picked = rng.sample(pool, rng.randint(2, 4))
        if sum(len(t) + 1 for _, t in picked) < chunk_size - 20:
            return picked


def _sections_in(path: Path) -> int:
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("## "))
