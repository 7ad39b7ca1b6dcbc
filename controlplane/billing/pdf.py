"""A statement for people: one tenant's month as a PDF a municipal council can read.

Built from the same statement set document as the other exports (closed: the stored,
digest-checked set; open: a draft with its cut-off), so the figures are the statement's own:
cost by service and pool, the sharing key of each pool in words, the municipality's share
(amount and decimal share), the totals, and a bar chart of the tenant's totals over the last
12 months (drawn with fpdf2's primitives; months without a closed statement are shown as
"no data"). Dates are Brussels dates; money is in the documented format (``1234.56``).

The PDF uses the core Helvetica font (no font files to ship), which covers Latin-1: every
Dutch and French municipality name fits; anything outside it is printed as ``?``.
This module must not know about the database, FastAPI or Typer: the caller passes the
totals of earlier closed months.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from fpdf import FPDF

from controlplane.billing.exports import BRUSSELS, DUTCH, Lang, brussels, share_decimal
from controlplane.billing.models import CostPool, SharingKey, UsageMeasure
from controlplane.billing.money import money_text
from controlplane.billing.periods import Period
from controlplane.billing.statements import LineKind, Statement, StatementLine, StatementSet

MEDIA_TYPE = "application/pdf"
#: How many months the chart shows, ending with the statement's own month.
CHART_MONTHS = 12

#: The PDF's own words in Dutch (the column vocabulary comes from :data:`exports.DUTCH`).
_DUTCH_PDF: dict[str, str] = {
    "Statement": "Afrekening",
    "Municipality": "Gemeente",
    "Inhabitants": "Inwoners",
    "Source: Statbel, CC BY 4.0": "Bron: Statbel, CC BY 4.0",
    "Closed at": "Afgesloten op",
    "draft: figures computed to": "ontwerp: bedragen berekend tot",
    "not final": "niet definitief",
    "Cost by service and pool": "Kosten per dienst en kostenpool",
    "Plan fee": "Planbedrag",
    "Shared service": "Gedeelde dienst",
    "Platform": "Platform",
    "Totals": "Totalen",
    "Totals of the last 12 months": "Totalen van de laatste 12 maanden",
    "no data": "geen",
    "equal": "gelijk",
    "by inhabitants": "volgens inwoners",
    "mixed": "gemengd",
    "by usage": "volgens gebruik",
    "instance hours": "instantie-uren",
    "CPU hours": "CPU-uren",
    "memory hours": "geheugen-uren",
    "Amounts in EUR, exclusive of VAT": "Bedragen in EUR, exclusief btw",
    "Key": "Sleutel",
    "What": "Wat",
}
_MEASURES = {
    UsageMeasure.INSTANCE_HOURS: "instance hours",
    UsageMeasure.CPU_HOURS: "CPU hours",
    UsageMeasure.MEMORY_HOURS: "memory hours",
}
_KINDS = {
    LineKind.PLAN_FEE: "Plan fee",
    LineKind.SHARED_SERVICE: "Shared service",
    LineKind.PLATFORM: "Platform",
}


def _t(text: str, lang: Lang) -> str:
    if lang is not Lang.NL:
        return text
    return _DUTCH_PDF.get(text) or DUTCH.get(text, text)


def key_in_words(pool: CostPool, lang: Lang | str = Lang.EN) -> str:
    """``equal``, ``by inhabitants``, ``mixed 30/70 (30 % equal, 70 % by inhabitants)``, …"""
    language = Lang(lang)
    if pool.key is SharingKey.MIXED:
        assert pool.equal_percent is not None
        equal = f"{pool.equal_percent.normalize():f}"
        rest = f"{(100 - pool.equal_percent).normalize():f}"
        return (
            f"{_t('mixed', language)} {equal}/{rest} ({equal} % {_t('equal', language)}, "
            f"{rest} % {_t('by inhabitants', language)})"
        )
    if pool.key is SharingKey.USAGE:
        return f"{_t('by usage', language)} ({_t(_MEASURES[pool.usage_measure], language)})"
    if pool.key is SharingKey.INHABITANTS:
        return _t("by inhabitants", language)
    return _t("equal", language)


def chart_months(period: Period, count: int = CHART_MONTHS) -> list[str]:
    """The ``count`` months ending with ``period``, oldest first (``2024-05`` … ``2025-04``)."""
    index = period.year * 12 + period.month - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1)]


def file_name(statements: StatementSet, tenant: str) -> str:
    """``statement-<tenant>-YYYY-MM.pdf``, or ``…-draft.pdf`` for an open month."""
    draft = "" if str(statements.status) == "closed" else "-draft"
    return f"statement-{tenant}-{statements.period}{draft}.pdf"


def statement_pdf(
    statements: StatementSet,
    tenant: str,
    *,
    history: Mapping[str, Decimal] | None = None,
    lang: Lang | str = Lang.EN,
    names: Mapping[str, str] | None = None,
) -> bytes:
    """``tenant``'s statement of ``statements`` as PDF bytes.

    ``history`` maps earlier months (``YYYY-MM``) to the tenant's closed total; the chart
    shows the statement's own total for its month and "no data" for any month not given.
    ``names`` maps instance ids to instance names.
    """
    language = Lang(lang)
    statement = statements.statement(tenant)
    pools = {a.pool.name: a.pool for a in statements.pools}
    doc = _Document(language)
    doc.add_page()
    _heading(doc, statements, statement)
    _lines(doc, statement, pools, names or {})
    _totals(doc, statement)
    totals = dict(history or {})
    totals[str(statements.period)] = statement.total
    _chart(doc, chart_months(statements.period), totals)
    return bytes(doc.output())


class _Document(FPDF):
    def __init__(self, lang: Lang) -> None:
        super().__init__(format="A4")
        self.language = lang
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)

    def t(self, text: str) -> str:
        return _t(text, self.language)

    def put(self, width: float, text: str, *, align: str = "L", bold: bool = False) -> None:
        """One cell of ``text`` (Latin-1, cut to fit ``width``), on the current line."""
        self.set_font(style="B" if bold else "")
        safe = text.encode("latin-1", "replace").decode("latin-1")
        while safe and self.get_string_width(safe) > width - 2:
            safe = safe[:-1]
        self.cell(width, 6, safe, align=align)

    def para(self, text: str, *, size: float = 10, bold: bool = False) -> None:
        self.set_font("Helvetica", "B" if bold else "", size)
        self.multi_cell(
            0,
            size * 0.5,
            text.encode("latin-1", "replace").decode("latin-1"),
            new_x="LMARGIN",
            new_y="NEXT",
        )


def _day(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(BRUSSELS).date().isoformat()


def _heading(doc: _Document, statements: StatementSet, statement: Statement) -> None:
    tenant = statement.tenant
    doc.para(f"{doc.t('Statement')} {statements.period} - {tenant.name}", size=16, bold=True)
    doc.ln(2)
    doc.para(
        f"{doc.t('Municipality')}: {tenant.name} ({tenant.slug}), "
        f"{'NIS-code' if doc.language is Lang.NL else 'NIS code'} {tenant.nis_code}"
    )
    if tenant.inhabitants is not None:
        year = f" ({tenant.inhabitants_year})" if tenant.inhabitants_year else ""
        doc.para(f"{doc.t('Inhabitants')}{year}: {tenant.inhabitants}")
    end = statements.period.end.astimezone(BRUSSELS).date()
    doc.para(
        f"{doc.t('Period')}: {statements.period} ({_day(statements.period.start)} - "
        f"{end.isoformat()}, Europe/Brussels)"
    )
    if str(statements.status) == "closed":
        doc.para(f"{doc.t('Status')}: {doc.t('closed')}; {doc.t('Digest')} {statements.digest}")
        doc.para(f"{doc.t('Closed at')}: {brussels(statements.closed_at)}")
    else:
        doc.para(
            f"{doc.t('Status')}: {doc.t('draft')} ({doc.t('draft: figures computed to')} "
            f"{brussels(statements.metered_until)}, {doc.t('not final')})"
        )
    doc.para(doc.t("Amounts in EUR, exclusive of VAT") + ".")
    doc.ln(3)


_WIDTHS = (30.0, 62.0, 48.0, 20.0, 20.0)


def _lines(
    doc: _Document,
    statement: Statement,
    pools: Mapping[str, CostPool],
    names: Mapping[str, str],
) -> None:
    doc.para(doc.t("Cost by service and pool"), size=12, bold=True)
    doc.set_font("Helvetica", "", 8)
    headers = ("Kind", "Service and pool / plan", "Key", "Share", "Amount")
    if doc.language is Lang.NL:
        headers = ("Soort", "Dienst en kostenpool / plan", "Verdeelsleutel", "Aandeel", "Bedrag")
    for width, text, align in zip(_WIDTHS, headers, "LLLRR", strict=True):
        doc.put(width, text, align=align, bold=True)
    doc.ln()
    for line in statement.lines:
        _line(doc, line, pools, names)
    doc.ln(2)
    # The table cuts long keys to fit; each pool's key in full, once.
    shown = dict.fromkeys(line.pool for line in statement.lines if line.pool in pools)
    for name in shown:
        assert name is not None
        doc.para(f"{doc.t('Key')} {name}: {key_in_words(pools[name], doc.language)}", size=8)
    doc.ln(2)


def _line(
    doc: _Document, line: StatementLine, pools: Mapping[str, CostPool], names: Mapping[str, str]
) -> None:
    service = line.service or ""
    if line.kind is LineKind.PLAN_FEE:
        instance = names.get(line.instance_id or "", line.instance_id or "")
        what = f"{service} {instance} ({line.plan}, {_day(line.start)} - {_day(line.end)})"
        key = ""
    else:
        what = f"{service} / {line.pool}" if service else str(line.pool)
        pool = pools.get(line.pool or "")
        key = key_in_words(pool, doc.language) if pool is not None else ""
        if line.flag:
            key = f"{key} ({line.flag})"
    share = "" if line.kind is LineKind.PLAN_FEE else f"{share_decimal(line.exact_share):f}"
    cells = (doc.t(_KINDS[line.kind]), what, key, share, money_text(line.amount))
    for width, text, align in zip(_WIDTHS, cells, "LLLRR", strict=True):
        doc.put(width, text, align=align)
    doc.ln()


def _totals(doc: _Document, statement: Statement) -> None:
    doc.para(doc.t("Totals"), size=12, bold=True)
    doc.set_font("Helvetica", "", 9)
    rows = [
        (doc.t("plan_fees"), statement.totals.plan_fees, False),
        (doc.t("shared_services"), statement.totals.shared_services, False),
        (doc.t("platform"), statement.totals.platform, False),
        (doc.t("total"), statement.total, True),
    ]
    for text, amount, bold in rows:
        doc.put(80, text, bold=bold)
        doc.put(30, money_text(amount), align="R", bold=bold)
        doc.ln()
    if statement.tenant.inhabitants is not None:
        doc.set_font("Helvetica", "I", 8)
        doc.cell(0, 6, f"{doc.t('Inhabitants')}: {doc.t('Source: Statbel, CC BY 4.0')}")
        doc.ln()
    doc.ln(3)


def _chart(doc: _Document, months: list[str], totals: Mapping[str, Decimal]) -> None:
    if doc.get_y() > 200:
        doc.add_page()
    doc.para(doc.t("Totals of the last 12 months"), size=12, bold=True)
    left, width, height = 20.0, 170.0, 50.0
    top = doc.get_y() + 6
    base = top + height
    slot = width / len(months)
    known = [v for m in months if (v := totals.get(m)) is not None]
    highest = max((v for v in known), default=Decimal(0))
    doc.set_draw_color(0)
    doc.line(left, base, left + width, base)
    doc.set_font("Helvetica", "", 6)
    for i, month in enumerate(months):
        x = left + i * slot
        value = totals.get(month)
        if value is None:
            doc.set_xy(x, base - 6)
            doc.cell(slot, 5, doc.t("no data"), align="C")
        else:
            bar = float(value / highest) * height if highest > 0 else 0.0
            doc.set_fill_color(60, 110, 170)
            doc.rect(x + slot * 0.2, base - bar, slot * 0.6, bar, style="F")
            doc.set_xy(x, base - bar - 5)
            doc.cell(slot, 5, money_text(value), align="C")
        doc.set_xy(x, base + 1)
        doc.cell(slot, 5, month, align="C")
    doc.set_xy(left, base + 8)
