"""One table component for every list page: server-side sorting and paging (issue 13).

A view builds a ``Table`` from its filtered queryset and the columns it shows; the template
renders ``portal/_table_head.html`` (sortable headers: a link per column, ``aria-sort`` on the
active one) and ``portal/_pager.html`` (first / previous / next / last, the rows shown of the
total, rows per page). Only one page of rows is loaded, so a page costs the same at 500 VMs or
at 100,000: the rows of the page, plus one count that the view may pass in when it already has
it (the VM list counts by state anyway), or none at all for a list that only grows (events:
``countless=True`` pages by previous / next and reads one row more than it shows, so no
``COUNT(*)`` runs over the whole table). Sorting is by a whitelisted model field per column,
then by primary key, so pages are stable; an unknown ``sort`` or ``page`` falls back to the
default or the nearest page, never an error. Query strings keep every other parameter (the
filters), so sorting, paging and filtering compose.

Column choice (issue 14): a table built with ``name=`` lets its user hide its ``optional``
columns; ``portal/_table_columns.html`` is the chooser (a GET form: ``?columns=1&show=…``),
and the choice is kept in the session per table name. Hidden columns are hidden by their cell
class (``Column.css``) with a style rule scoped to the table (``data-table=<name>``), so rows
pushed over the websocket — rendered without the session — follow the choice too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

PER_PAGE = (25, 50, 100, 200)
DEFAULT_PER_PAGE = 50


@dataclass(frozen=True)
class Column:
    """``key`` names the column in ``?sort=``; ``order`` is the model field it sorts by (``None``:
    not sortable); ``css`` its cell class."""

    key: str
    label: str
    order: str | None = None
    css: str = ""
    #: the user may hide it (needs ``css``: the class of its header and cells)
    optional: bool = False


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or default)
    except ValueError:
        return default


class Table:
    def __init__(
        self,
        request: HttpRequest,
        queryset: QuerySet[Any],
        columns: Sequence[Column],
        *,
        default_sort: str,
        total: int | None = None,
        countless: bool = False,
        name: str = "",
    ) -> None:
        self.request = request
        self.columns = list(columns)
        self.name = name
        get = request.GET
        self.hidden = self._hidden_columns()
        sortable = {c.key: c for c in self.columns if c.order}
        sort = get.get("sort", default_sort)
        if sort.lstrip("-") not in sortable:
            sort = default_sort
        self.sort = sort
        self.sort_key = sort.lstrip("-")
        self.descending = sort.startswith("-")
        order = sortable[self.sort_key].order
        assert order is not None
        per_page = _int(get.get("per_page"), DEFAULT_PER_PAGE)
        self.per_page = per_page if per_page in PER_PAGE else DEFAULT_PER_PAGE
        self.countless = countless
        self.total: int | None = None
        self.pages: int | None = None
        page = max(1, _int(get.get("page"), 1))
        if not countless:
            self.total = queryset.count() if total is None else total
            self.pages = max(1, math.ceil(self.total / self.per_page))
            page = min(page, self.pages)
        self.page = page
        start = (self.page - 1) * self.per_page
        sign = "-" if self.descending else ""
        ordered = queryset.order_by(f"{sign}{order}", f"{sign}pk")
        rows = list(ordered[start : start + self.per_page + int(countless)])
        self.has_next = len(rows) > self.per_page if countless else self.page < (self.pages or 1)
        self.rows = rows[: self.per_page]
        self.first_row = start + 1 if self.rows else 0
        self.last_row = start + len(self.rows)

    def _hidden_columns(self) -> frozenset[str]:
        """The optional columns the user hid: from the chooser's submission (kept in the session
        for the next visit), else from the session. Unknown keys are ignored."""
        if not self.name:
            return frozenset()
        optional = {c.key for c in self.columns if c.optional and c.css}
        key = f"table-columns:{self.name}"
        get = self.request.GET
        session = getattr(self.request, "session", None)
        if get.get("columns") == "1":
            hidden = sorted(optional - set(get.getlist("show")))
            if session is not None:
                session[key] = hidden
            return frozenset(hidden)
        stored = session.get(key, []) if session is not None else []
        return frozenset(k for k in stored if isinstance(k, str)) & optional

    @property
    def chooser(self) -> list[dict[str, Any]]:
        """The optional columns with whether each is shown (``portal/_table_columns.html``)."""
        return [{"key": c.key, "label": c.label, "shown": c.key not in self.hidden}
                for c in self.columns if c.optional and c.css]  # fmt: skip

    @property
    def hidden_css(self) -> list[str]:
        """The cell classes of the hidden columns."""
        return [c.css.split()[0] for c in self.columns if c.key in self.hidden]

    @property
    def keep(self) -> list[tuple[str, str]]:
        """The query parameters the chooser form carries along (filters, sort; not the choice)."""
        return [(k, v) for k, vs in self.request.GET.lists() if k not in ("columns", "show", "page") for v in vs]

    def url(self, **changes: Any) -> str:
        """This page's query string with ``changes`` (``None`` removes a parameter)."""
        query = self.request.GET.copy()
        for done in ("columns", "show"):  # the column choice is applied once, then kept in the session
            query.pop(done, None)
        for name, value in changes.items():
            if value is None:
                query.pop(name, None)
            else:
                query[name] = str(value)
        return "?" + query.urlencode() if query else "?"

    @property
    def headers(self) -> list[dict[str, Any]]:
        out = []
        for c in self.columns:
            active = c.order is not None and c.key == self.sort_key
            # a click on the active column flips it; on another it sorts ascending
            next_sort = (c.key if self.descending else f"-{c.key}") if active else c.key
            out.append({
                "label": c.label, "css": c.css, "sortable": c.order is not None, "active": active,
                "descending": active and self.descending, "url": self.url(sort=next_sort, page=None),
                "aria_sort": ("descending" if self.descending else "ascending") if active else "",
            })  # fmt: skip
        return out

    @property
    def pager(self) -> dict[str, Any]:
        def to(page: int) -> str | None:
            if page < 1 or page == self.page or (page > self.page and not self.has_next):
                return None
            return self.url(page=page) if self.pages is None or page <= self.pages else None

        return {
            "page": self.page, "pages": self.pages, "total": self.total, "first_row": self.first_row,
            "last_row": self.last_row, "first": to(1), "previous": to(self.page - 1), "next": to(self.page + 1),
            "last": to(self.pages) if self.pages else None, "per_page": self.per_page, "countless": self.countless,
            "sizes": [{"n": n, "url": self.url(per_page=n, page=None), "active": n == self.per_page} for n in PER_PAGE],
        }  # fmt: skip
