"""--report DIR: report.md (+ the chart PNGs beside it) and a self-contained report.html (charts inlined as base64
PNG, inline CSS, no scripts, fonts or external files). Every piece of case text is html.escape'd: answers may
contain markup.

Charts use matplotlib's Agg backend. Their labels are English/ASCII (topics and language codes are ASCII ids);
a font with Japanese glyphs is used when one is installed, otherwise any non-ASCII label is replaced so no tofu
boxes are drawn.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

_CJK_FONTS = ("Noto Sans CJK JP", "Noto Sans JP", "IPAexGothic", "IPAGothic", "TakaoGothic", "VL Gothic",
              "Source Han Sans JP", "Hiragino Sans", "Yu Gothic", "MS Gothic", "Droid Sans Japanese")
CSS = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
       ".ans{white-space:pre-wrap;max-width:520px}.bad{color:#b00020}.ok{color:#1b7f3b}img{max-width:100%}")


def _setup_matplotlib() -> tuple[object, bool]:
    from bpo_assistant.extras import require

    matplotlib = require("matplotlib", "eval", "the eval report's charts")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    cjk = next((n for n in _CJK_FONTS if n in names), None)
    if cjk:
        plt.rcParams["font.family"] = [cjk, "DejaVu Sans"]
    return plt, cjk is not None


def _png(plt, fig) -> bytes:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _bar_chart(plt, label, title, names, values, ylabel="pass rate", note=None) -> bytes:
    """Bars of shares in [0, 1], each annotated with its percentage (and an optional note such as 8/13)."""
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 2), 3.2))
    bars = ax.bar([label(n) for n in names], [v or 0.0 for v in values], color="#4c72b0")
    for b, v, n in zip(bars, values, note or [None] * len(values)):
        ax.annotate(("n/a" if v is None else f"{v:.0%}") + (f"\n{n}" if n else ""),
                    (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.22)  # room for the labels above 100 % bars
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.tick_params(axis="x", labelrotation=30 if len(names) > 4 else 0, labelsize=8)
    return _png(plt, fig)


def _grouped(ax, title, metrics, series: dict[str, list], ylabel, fmt="{:.3g}") -> None:
    width = 0.8 / max(1, len(series))
    for i, (name, vals) in enumerate(series.items()):
        xs = [j + i * width for j in range(len(metrics))]
        bars = ax.bar(xs, [v or 0.0 for v in vals], width, label=name)
        for b, v in zip(bars, vals):
            ax.annotate("n/a" if v is None else fmt.format(v), (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=8)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    ax.margins(y=0.15)
    ax.legend(fontsize=8)


def _rates_and_latency(plt, title, rates: dict[str, list], latency: dict[str, list] | None) -> bytes:
    """Left: pass rate ([answerable pass rate]) and citation validity per series; right (optional): p50/p95 ms."""
    fig, axes = plt.subplots(1, 2 if latency else 1, figsize=(9 if latency else 5, 3.2), squeeze=False)
    names = ["pass rate", "answerable", "citation validity"] if len(next(iter(rates.values()))) == 3 else \
        ["pass rate", "citation validity"]
    _grouped(axes[0][0], "pass rate / citation validity", names, rates, "share", "{:.1%}")
    axes[0][0].set_ylim(0, 1.22)
    if latency:
        _grouped(axes[0][1], "latency", ["p50", "p95"], latency, "ms", "{:.0f}")
    fig.suptitle(title)
    fig.tight_layout()
    return _png(plt, fig)


def make_charts(run: dict, baseline=None, peer=None, coverage=None) -> dict[str, tuple[str, bytes]]:
    """name -> (caption, PNG bytes)."""
    plt, has_cjk = _setup_matplotlib()

    def label(s: str) -> str:
        return s if has_cjk or s.isascii() else s.encode("ascii", "replace").decode()

    charts: dict[str, tuple[str, bytes]] = {}
    for key, caption in (("by_topic", "Pass rate by topic"), ("by_lang", "Pass rate by language")):
        groups = run[key]
        charts[f"pass_{key}"] = (caption, _bar_chart(plt, label, caption, list(groups),
                                                      [g["pass_rate"] for g in groups.values()],
                                                      note=[f"{g['passed']}/{g['cases']}" for g in groups.values()]))
    lat = [r["latency_ms"] for r in run["results"]]
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.hist(lat, bins=min(30, max(5, len(lat) // 3)), color="#55a868")
    for q, style in (("p50", "--"), ("p95", ":")):
        if run["latency_ms"][q] is not None:
            ax.axvline(run["latency_ms"][q], color="k", linestyle=style, label=f"{q} {run['latency_ms'][q]:.0f} ms")
    ax.set_title("Latency per case")
    ax.set_xlabel("ms")
    ax.set_ylabel("cases")
    ax.legend(fontsize=8)
    charts["latency"] = ("Latency histogram", _png(plt, fig))
    if baseline:
        charts["vs_baseline"] = ("This run vs the baseline", _rates_and_latency(
            plt, f"This run vs baseline ({baseline.get('created', '?')})",
            {"baseline": [baseline.get("pass_rate"), baseline.get("citation_validity")],
             "this run": [run["pass_rate"], run["citation_validity"]]}, None))
    if peer and "error" not in peer:
        r = peer["ratios"]
        charts["vs_peer"] = ("Ours vs the peer LangChain pipeline", _rates_and_latency(
            plt, f"Ours vs peer pipeline (ours/peer): answerable pass rate {_x(r.get('answerable_pass_ratio'))}, "
                 f"p50 latency {_x(r['latency_p50_ratio'])}",
            {"peer": [peer["pass_rate"], peer.get("answerable_pass_rate"), peer["citation_validity"]],
             "ours": [run["pass_rate"], run.get("answerable_pass_rate"), run["citation_validity"]]},
            {"peer": [peer["latency_ms"]["p50"], peer["latency_ms"]["p95"]],
             "ours": [run["latency_ms"]["p50"], run["latency_ms"]["p95"]]}))
    if coverage and coverage.get("facts"):
        charts["coverage"] = ("Knowledge coverage of the source article's facts", _bar_chart(
            plt, label, f"Knowledge coverage ({coverage['facts']} facts)", ["ja", "en"],
            [coverage["ja"], coverage["en"]], ylabel="share of facts stated",
            note=[f"{coverage['covered'][k]}/{coverage['facts']}" for k in ("ja", "en")]))
    return charts


def _x(ratio) -> str:
    return "n/a" if ratio is None else f"x{ratio:.2f}"


def _v(x, pct=False) -> str:
    return "n/a" if x is None else (f"{x:.1%}" if pct else (f"{x:.3f}" if isinstance(x, float) else str(x)))


def _summary_rows(run, gate, peer) -> list[tuple[str, str]]:
    rows = [("cases", _v(run["cases"])), ("passed", _v(run["passed"])), ("pass rate", _v(run["pass_rate"], True))]
    rows += [(k.replace("_", " "), _v(run[k])) for k in ("refusal_precision", "refusal_recall", "citation_validity",
                                                         "recall_at_1", "recall_at_3", "mrr")]
    lat = run["latency_ms"]
    rows += [("latency p50 / p95 (ms)", " / ".join("n/a" if lat[q] is None else f"{lat[q]:.0f}" for q in ("p50", "p95")))]
    if peer and "error" not in peer:
        from .baseline_pipeline import DESCRIPTION

        r = peer["ratios"]
        rows += [("peer", peer.get("description", DESCRIPTION)),
                 ("pass rate ours / peer", f"{_v(run['pass_rate'], True)} / {_v(peer['pass_rate'], True)}"),
                 ("answerable pass rate ours / peer", f"{_v(run.get('answerable_pass_rate'), True)} / "
                                                      f"{_v(peer.get('answerable_pass_rate'), True)}"),
                 ("refusal P / R ours", f"{_v(run['refusal_precision'])} / {_v(run['refusal_recall'])}"),
                 ("refusal P / R peer", f"{_v(peer['refusal_precision'])} / {_v(peer['refusal_recall'])}"),
                 ("ours / peer answerable pass rate", _v(r.get("answerable_pass_ratio"))),
                 ("ours / peer pass rate", _v(r["pass_rate_ratio"])),
                 ("ours / peer p50 latency", _v(r["latency_p50_ratio"]))]
    if gate:
        rows += [("gate", "OK" if gate["ok"] else "FAILED: " + "; ".join(gate["reasons"]))]
    return rows


def _md_cell(text: str) -> str:
    return html.escape(str(text)).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


def write_report(out_dir, run: dict, baseline=None, gate=None, peer=None, coverage=None) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    charts = make_charts(run, baseline, peer, coverage)
    failing = [r for r in run["results"] if not r["passed"]]
    rows = _summary_rows(run, gate, peer)
    e = html.escape

    md = ["# Q&A regression report", "", "| metric | value |", "|---|---|"]
    md += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in rows] + [""]
    doc = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Q&amp;A regression report</title>"
           f"<style>{CSS}</style></head><body><h1>Q&amp;A regression report</h1><table>"]
    doc += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows] + ["</table>"]
    for name, (caption, png) in charts.items():
        (out / f"{name}.png").write_bytes(png)
        md += [f"## {caption}", "", f"![{caption}]({name}.png)", ""]
        doc.append(f"<h2>{e(caption)}</h2><img alt='{e(caption)}' "
                   f"src=\"data:image/png;base64,{base64.b64encode(png).decode('ascii')}\">")
    head = ["id", "lang", "topic", "question", "answer", "reasons"]
    md += [f"## Failing cases ({len(failing)})", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    doc.append(f"<h2>Failing cases ({len(failing)})</h2><table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>")
    for r in failing:
        cells = [r["id"], r["lang"], r["topic"], r["question"], r["answer"], "\n".join(r["reasons"])]
        md.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        doc.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in cells[:4])
                   + f"<td class='ans'>{e(cells[4])}</td><td class='bad'>{'<br>'.join(map(e, r['reasons']))}</td></tr>")
    doc.append("</table>")
    if coverage and coverage.get("missing"):
        md += ["", "## Facts not covered", ""] + [f"- {_md_cell(m['id'])} ({m['lang']}): {_md_cell(m['reason'])}"
                                                   for m in coverage["missing"]]
        doc.append("<h2>Facts not covered</h2><ul>" + "".join(
            f"<li>{e(m['id'])} ({e(m['lang'])}): {e(m['reason'])}</li>" for m in coverage["missing"]) + "</ul>")
    doc.append("</body></html>")
    paths = {"md": out / "report.md", "html": out / "report.html"}
    paths["md"].write_text("\n".join(md) + "\n", encoding="utf-8")
    paths["html"].write_text("\n".join(doc) + "\n", encoding="utf-8")
    return paths
