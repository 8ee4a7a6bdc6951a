"""Sizes are binary multiples and say so (KiB, MiB, GiB): issue 14 found "MB" / "GB" labels on
values that are MiB / GiB (Django's ``filesizeformat`` divides by 1024 but writes MB)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.template import Context, Template


def test_sizes_are_labelled_in_binary_units_in_any_template() -> None:
    render = Template("{{ a|iec_size }} · {{ b|iec_size }} · {{ c|iec_size }} · {{ d|iec_size }}")  # a builtin
    text = render.render(Context({"a": 512, "b": 1536, "c": 10 * 1024**3, "d": None}))
    assert text == "512 bytes · 1.5 KiB · 10.0 GiB · 0 bytes"


def test_no_template_uses_the_decimal_labels() -> None:
    root = Path(settings.BASE_DIR) / "templates"
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.html") if "filesizeformat" in p.read_text()]
    assert offenders == []
    for page in root.rglob("*.html"):
        text = page.read_text()
        for bad in ("(MB)", "(GB)", " MB<", " GB<", ">MB<", ">GB<"):
            assert bad not in text, (page, bad)
