"""The certificate: one A4 page per language of the school, with the verification link and
its QR code (segno). Only what the public verification page shows, plus the conditions."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from datetime import date

import segno
from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos

from backend.i18n import Texts
from backend.reporting.exports.pdf_export import _TTF, FONT


def _when(tx: Texts, d: date | None) -> str:
    if d is None:
        return "–"
    return d.isoformat() if tx.lang == "en" else tx.date(d, "long")


def certificate_pdf(
    languages: Sequence[Texts],
    *,
    school: str,
    agency: str,
    round_name: str,
    kind: str,
    outcome: str,
    conditions: str | None,
    valid_from: date | None,
    valid_until: date | None,
    url: str,
) -> bytes:
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.add_font(FONT, "", os.path.join(_TTF, "DejaVuSans.ttf"))
    pdf.add_font(FONT, "B", os.path.join(_TTF, "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.set_margins(20, 20, 20)
    pdf.set_title(school)
    qr = io.BytesIO()
    segno.make(url, error="m").save(qr, kind="png", scale=8, border=2)
    for tx in languages:
        pdf.add_page()
        pdf.set_draw_color(40, 70, 110)
        pdf.set_line_width(1.2)
        pdf.rect(10, 10, 190, 277)
        pdf.set_y(34)
        pdf.set_font(FONT, "", 13)
        pdf.multi_cell(0, 7, agency, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(8)
        pdf.set_font(FONT, "B", 26)
        title = (
            tx.gettext("Certificate of accreditation")
            if kind == "accreditation"
            else tx.gettext("Certificate of excellence in career guidance")
        )
        pdf.multi_cell(0, 12, title, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(10)
        pdf.set_font(FONT, "", 13)
        pdf.multi_cell(
            0, 7, tx.gettext("awarded to"), align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        pdf.ln(3)
        pdf.set_font(FONT, "B", 20)
        pdf.multi_cell(0, 10, school, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(8)
        pdf.set_font(FONT, "", 12)
        lines = [
            tx.gettext("Level: %(level)s", level=tx.label("outcome", outcome)),
            tx.gettext("Round: %(round)s", round=round_name),
            tx.gettext(
                "Valid from %(start)s to %(end)s",
                start=_when(tx, valid_from),
                end=_when(tx, valid_until),
            ),
            tx.gettext("Against the ETF excellence model in career guidance for VET."),
        ]
        for line in lines:
            pdf.multi_cell(0, 7, line, align=Align.C, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        if conditions:
            pdf.ln(4)
            pdf.set_font(FONT, "B", 11)
            pdf.multi_cell(
                0, 6, tx.gettext("Conditions"), align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
            pdf.set_font(FONT, "", 10)
            pdf.multi_cell(
                0, 5, conditions[:1500], align=Align.L, new_x=XPos.LMARGIN, new_y=YPos.NEXT
            )
        qr.seek(0)
        pdf.image(qr, x=80, y=205, w=50, h=50)
        pdf.set_xy(20, 257)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 5, tx.gettext("Verify this certificate: %(url)s", url=url), align=Align.C)
    return bytes(pdf.output())
