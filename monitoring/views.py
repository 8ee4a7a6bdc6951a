"""Pages: the live event stream, and webhooks with their deliveries (admins)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from tenants.querysets import is_cloud_admin

from .models import Event, Webhook, WebhookDelivery


@login_required
def events(request: HttpRequest) -> HttpResponse:
    qs = Event.objects.restrict(request.user, "view")
    if t := request.GET.get("type"):
        qs = qs.filter(type__startswith=t)
    return render(request, "monitoring/events.html", {"events": qs[:200], "type": request.GET.get("type", "")})


@login_required
def webhooks(request: HttpRequest) -> HttpResponse:
    if not is_cloud_admin(request.user):
        raise Http404("not found")
    if request.method == "POST":
        patterns = [p.strip() for p in request.POST.get("event_types", "").replace(",", "\n").splitlines() if p.strip()]
        url = request.POST.get("url", "").strip()
        if not patterns or not url.startswith(("http://", "https://")):
            messages.error(request, "url must be http(s):// and event_types needs at least one pattern")
        else:
            Webhook.objects.create(name=request.POST.get("name", "")[:64] or url[:64], url=url, event_types=patterns,
                                   created_by=request.user)  # fmt: skip
            messages.success(request, "Webhook registered.")
        return redirect("webhooks")
    ctx = {
        "hooks": Webhook.objects.all(),
        "deliveries": WebhookDelivery.objects.select_related("webhook", "event")[:100],
    }
    return render(request, "monitoring/webhooks.html", ctx)
