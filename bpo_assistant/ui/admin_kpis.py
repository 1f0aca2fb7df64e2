"""The admin tab's KPI and maintenance panels: the question log's figures per day and ISO week with every
formula written on the page (owners.kpi, the code the eval report shares), and `kb maintenance`'s rows.

KpiPanel is mixed into ui.admin.AdminService, which provides settings and _who (the admin check).
"""

from __future__ import annotations

import gradio as gr

from bpo_assistant.owners import kpi

MAINTENANCE_COLUMNS = ["種類 / kind", "項目 / item", "言語 / lang", "担当 / owner", "内容 / detail", "ファイル / file"]


class KpiPanel:
    def maintenance(self, request: gr.Request) -> list[list]:
        """`kb maintenance`'s rows (stale, review-due, few-questions, draft), with the file relative to the kb."""
        from bpo_assistant.owners.maintenance import maintenance

        self._who(request)
        kb = str(self.settings.kb_dir).rstrip("/") + "/"
        return [[r.kind, r.item, r.lang, r.owner, r.detail, r.path.removeprefix(kb)]
                for r in maintenance(self.settings)]

    def kpis(self) -> tuple:
        """Daily table, daily plot, weekly table, weekly refusals by reason: one read of the log for all four."""
        logged = kpi.log_rows(self.settings)
        days, weeks = kpi.aggregate(logged, kpi.day_of), kpi.aggregate(logged, kpi.week_of)
        return ([d.row() for d in days], self.kpi_plot(days), [w.row() for w in weeks],
                [r for w in reversed(weeks) for r in w.reason_rows()])  # the latest week on top

    def kpi_plot(self, days: list):
        """The same daily figures as the table, as lines: one per rate (the dislike rate only on rated days, the
        curated share only on days with answers)."""
        import pandas as pd

        rows = []
        for d in days:
            rows += [(d.period, "回答率 / answer rate", d.answer_rate),
                     (d.period, "拒否率 / refusal rate", d.refusal_rate)]
            if d.rated:
                rows.append((d.period, "低評価率 / dislike rate", d.dislike_rate))
            if d.answered:
                rows.append((d.period, "キュレート回答率 / curated share", d.curated_share))
        return pd.DataFrame(rows, columns=["day", "metric", "rate"])


def build_maintenance_panel(svc, ui: dict) -> None:
    button = gr.Button("メンテナンス一覧 / Maintenance list", size="sm", elem_id="bpo-admin-maintenance")
    table = gr.Dataframe(headers=MAINTENANCE_COLUMNS, value=[], interactive=False, wrap=True,
                         label="要メンテナンス / needs an owner (stale, review-due, few-questions, draft)",
                         elem_id="bpo-admin-maintenance-table")
    button.click(svc.maintenance, None, table, **ui)


def build_kpi_panel() -> list:
    """The KPI components in the order KpiPanel.kpis() fills them."""
    gr.Markdown("### KPI\n\n" + "\n".join(f"- {f}" for f in kpi.FORMULAS.values()))
    daily = gr.Dataframe(headers=kpi.COLUMNS, value=[], interactive=False, label="日次 / daily", elem_id="bpo-admin-kpi")
    plot = gr.LinePlot(None, x="day", y="rate", color="metric", y_lim=[0, 1], elem_id="bpo-admin-kpi-plot",
                       label="KPI / day", x_title="日付 / day", y_title="率 / rate")
    weekly = gr.Dataframe(headers=kpi.COLUMNS, value=[], interactive=False, label="週次 (ISO週) / weekly (ISO week)",
                          elem_id="bpo-admin-kpi-week")
    reasons = gr.Dataframe(headers=kpi.REASON_COLUMNS, value=[], interactive=False, wrap=True,
                           label="拒否理由別 (週次) / refusals by reason (weekly)", elem_id="bpo-admin-kpi-reasons")
    return [daily, plot, weekly, reasons]
