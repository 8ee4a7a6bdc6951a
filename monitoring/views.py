"""Pages: the live event stream, and webhooks with their deliveries (admins; registered through
``monitoring.services``)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from portal.api import client_ip
from portal.errors import ServiceError
from portal.tables import Column, Table
from tenants.querysets import is_cloud_admin

from . import services
from .models import AuditRecord, Event, Webhook, WebhookDelivery

EVENT_COLUMNS = [
    Column("time", "Time", "pk"), Column("type", "Type", "type"),
    Column("object", "Object", None, "c-object", optional=True),
    Column("actor", "Actor", "actor", "c-actor", optional=True),
    Column("details", "Details", None, "c-details", optional=True),
]  # fmt: skip


@login_required
def events(request: HttpRequest) -> HttpResponse:
    qs = Event.objects.restrict(request.user, "view")
    if t := request.GET.get("type"):
        qs = qs.filter(type__startswith=t)
    # the event log only grows: paged by previous / next, never counted
    table = Table(request, qs, EVENT_COLUMNS, default_sort="-time", countless=True, name="events")
    return render(request, "monitoring/events.html", {"events": table.rows, "table": table, "type": t or ""})


AUDIT_COLUMNS = [
    Column("time", "Time", "pk", "c-time"), Column("actor", "Who", "actor_name", "c-actor", optional=True),
    Column("action", "Action", "action", "c-action"), Column("object", "Object", "object_type", "c-object"),
    Column("project", "Project", None, "c-project", optional=True),
    Column("result", "Result", "result", "c-result", optional=True),
    Column("ip", "From", None, "c-ip", optional=True), Column("detail", "Details", None, "c-detail", optional=True),
]  # fmt: skip


@login_required
def audit(request: HttpRequest) -> HttpResponse:
    """The audit trail (who did what to which object, from where): the records the user may see
    through the gate, in the shared table (sort, pages, column choice); it only grows, so it is
    paged by previous / next and never counted."""
    qs = AuditRecord.objects.restrict(request.user, "view").select_related("project__organization")
    action = request.GET.get("action", "").strip()[:32]
    query = request.GET.get("q", "").strip()[:128]
    if action:
        qs = qs.filter(action=action)
    if query:
        qs = qs.filter(object_name__icontains=query)
    table = Table(request, qs, AUDIT_COLUMNS, default_sort="-time", countless=True, name="audit")
    ctx = {"records": table.rows, "table": table, "action": action, "query": query}
    return render(request, "monitoring/audit.html", ctx)


@login_required
def webhooks(request: HttpRequest) -> HttpResponse:
    if not is_cloud_admin(request.user):
        raise Http404("not found")
    if request.method == "POST":
        patterns = [p.strip() for p in request.POST.get("event_types", "").replace(",", "\n").splitlines() if p.strip()]
        try:
            services.create_webhook(
                request.user, name=request.POST.get("name", "")[:64], url=request.POST.get("url", ""),
                event_types=patterns, ip=client_ip(request),
            )  # fmt: skip
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Webhook registered.")
        return redirect("webhooks")
    ctx = {
        "hooks": Webhook.objects.all(),
        "deliveries": WebhookDelivery.objects.select_related("webhook", "event")[:100],
    }
    return render(request, "monitoring/webhooks.html", ctx)
