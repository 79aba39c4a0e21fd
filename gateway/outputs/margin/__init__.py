"""Renderings of a margin report: ``data`` (results/summary/errors CSV and the JSON document),
``table`` (a rich table for terminals) and ``pdf`` (fpdf2).

Everything here takes an ``engine.pmc.report.MarginReport`` and returns bytes or writes to a rich
console; nothing here computes margin. Requirements, risks and minimums are positive numbers in
CSV and JSON (column ``requirement``); the table and the PDF show them negative, as margin
results screens do. Amounts are rounded to cents in CSV/JSON and to dollars in the table/PDF.
"""
