"""Browser pages for identity: the user's account (API tokens, SSH keys, second factor) and
administration of organizations, projects, members and users. Changes go through services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from portal.api import client_ip
from portal.errors import Conflict, InvalidInput, NotFound, ServiceError
from tenants.querysets import is_cloud_admin

from . import credentials, quotas
from . import services as tenancy
from .models import ApiToken, Membership, Organization, Project, SSHKey
from .roles import Role


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


@login_required
def account(request: HttpRequest) -> HttpResponse:
    ctx: dict[str, Any] = {
        "tokens": ApiToken.objects.filter(user=request.user).select_related("project"),
        "keys": SSHKey.objects.filter(user=request.user),
        "projects": Project.objects.restrict(request.user, "view"),
        "new_token": request.session.pop("nephele_new_token", None),
        "token_max_days": credentials.max_token_days(),
    }
    return render(request, "tenants/account.html", ctx)


@login_required
@require_POST
def account_action(request: HttpRequest) -> HttpResponse:
    p = request.POST
    try:
        what = p.get("what")
        if what == "token-create":
            # same rule as the API: empty days → the maximum; a project the user cannot see → an error
            # (never a token for all projects)
            days_raw, project_raw = p.get("days", "").strip(), p.get("project", "").strip()
            if days_raw and not (days_raw.isdigit() and len(days_raw) <= 6):
                raise InvalidInput("days must be a whole number of days", field="days")
            if project_raw and not (project_raw.isdigit() and len(project_raw) <= 18):
                raise InvalidInput("project not found", field="project")
            _token, secret = credentials.create_token(
                request.user,
                name=p.get("name", ""),
                days=int(days_raw) if days_raw else None,
                project=int(project_raw) if project_raw else None,
            )
            request.session["nephele_new_token"] = secret  # shown once, on the next page
        elif what == "token-revoke":
            credentials.revoke_token(request.user, _int(p.get("id")) or 0)
            messages.success(request, "Token revoked.")
        elif what == "key-add":
            key = credentials.add_ssh_key(request.user, name=p.get("name", ""), public_key=p.get("public_key", ""))
            messages.success(request, f"Key {key.name} added ({key.fingerprint}).")
        elif what == "key-delete":
            credentials.delete_ssh_key(request.user, _int(p.get("id")) or 0)
            messages.success(request, "Key removed.")
        else:
            messages.error(request, "unknown request")
    except ServiceError as exc:
        messages.error(request, f"{exc.field}: {exc.message}" if exc.field else exc.message)
    return redirect("account")


def _people(user: Any) -> Any:
    """The users a cloud admin manages: not django-guardian's stand-in for anonymous visitors."""
    if not is_cloud_admin(user):
        return None
    return get_user_model().objects.exclude(username=_ANONYMOUS).order_by("username")


_ANONYMOUS = getattr(settings, "ANONYMOUS_USER_NAME", "AnonymousUser")  # django-guardian's setting


@login_required
def identity(request: HttpRequest) -> HttpResponse:
    """Organizations, projects and members the caller administers; users for cloud admins.

    The members shown (and granted to) are those of the project chosen in the header's switcher,
    so the page and the switcher never disagree about which project an action touches."""
    orgs = Organization.objects.restrict(request.user, "view").prefetch_related("projects")
    admin_orgs = set(Organization.objects.restrict(request.user, "admin").values_list("pk", flat=True))
    admin_projects = Project.objects.restrict(request.user, "admin").select_related("organization")
    if not orgs.exists() and not is_cloud_admin(request.user):
        raise Http404("nothing to administer")
    active = getattr(request, "project", None)
    selected = admin_projects.filter(pk=active.pk).first() if active is not None else None
    ctx = {
        "orgs": orgs,
        "admin_orgs": admin_orgs,
        "admin_projects": admin_projects,
        "active": active,
        "selected": selected,
        "members": Membership.objects.filter(project=selected).select_related("user").order_by("user__username")
        if selected
        else [],
        "roles": Role.choices,
        "users": _people(request.user),
        "owned": tenancy.owned_resources(selected) if selected else [],
    }
    return render(request, "tenants/identity.html", ctx)


def _acting_project(request: HttpRequest) -> Project:
    """The project a member action is for: the switcher's, which the form must still name
    (a switch in another tab since the page was drawn refuses the action, changing nothing)."""
    active = getattr(request, "project", None)
    posted = _int(request.POST.get("project"))
    if active is None or posted != active.pk:
        raise Conflict(
            "the active project changed since this page was drawn; nothing was changed — check the "
            "project switcher and try again",
            field="project",
        )
    project = Project.objects.restrict(request.user, "admin").filter(pk=active.pk).first()
    if project is None:
        raise NotFound("project not found", field="project")
    return project


def _member_target(request: HttpRequest) -> Any:
    name = request.POST.get("username", "").strip()
    target = get_user_model().objects.filter(username=name, is_active=True).exclude(username=_ANONYMOUS).first()
    if target is None:
        raise NotFound(f"no active user named {name!r}" if name else "user name is required", field="username")
    return target


@login_required
@require_POST
def identity_action(request: HttpRequest) -> HttpResponse:
    p, user = request.POST, request.user
    back = "identity"
    try:
        what = p.get("what")
        if what == "org-create":
            org = tenancy.create_organization(
                user, name=p.get("name", ""), require_2fa=bool(p.get("require_2fa")), ip=client_ip(request)
            )
            messages.success(request, f"Organization {org.name} created.")
        elif what == "org-2fa":
            org = tenancy.update_organization(
                user, _int(p.get("id")) or 0, require_2fa=p.get("require_2fa") == "1", ip=client_ip(request)
            )
            messages.success(request, f"{org.name}: second factor {'required' if org.require_2fa else 'optional'}.")
        elif what == "project-create":
            org = Organization.objects.restrict(user, "admin").filter(pk=_int(p.get("organization"))).first()
            if org is None:
                raise NotFound("organization not found", field="organization")
            project = tenancy.create_project(user, organization=org, name=p.get("name", ""), ip=client_ip(request))
            messages.success(request, f"Project {project} created.")
        elif what == "project-delete":
            tenancy.delete_project(user, _int(p.get("id")) or 0, ip=client_ip(request))
            messages.success(request, "Project deleted.")
        elif what in ("grant", "role-change", "member-remove"):
            project = _acting_project(request)
            target = _member_target(request)
            if what == "member-remove":
                tenancy.grant_project_role(user, project=project, user=target, role=None, ip=client_ip(request))
                messages.success(request, f"{target.username} removed from {project}.")
            else:
                role = p.get("role", "")
                if role not in Role.values:
                    raise InvalidInput(f"role must be one of {', '.join(Role.values)}", field="role")
                if what == "role-change" and not Membership.objects.filter(project=project, user=target).exists():
                    raise NotFound(f"{target.username} is not a member of {project}", field="username")
                tenancy.grant_project_role(
                    user, project=project, user=target, role=role, ip=client_ip(request), new_member=what == "grant"
                )
                label = Role(role).label
                verb = "is now" if what == "role-change" else "added as"
                messages.success(request, f"{target.username} {verb} {label} in {project}.")
        elif what == "user-create":
            new = tenancy.create_user(
                user, username=p.get("username", ""), email=p.get("email", ""), password=p.get("password") or None
            )
            messages.success(request, f"User {new.username} created.")
        elif what in ("user-enable", "user-disable"):
            tenancy.set_user_active(user, _int(p.get("id")) or 0, what == "user-enable")
            messages.success(request, "Done.")
        elif what == "user-reset":
            tenancy.reset_credentials(user, _int(p.get("id")) or 0, password=p.get("password", ""))
            messages.success(request, "Password reset; the user's tokens are revoked and second factor cleared.")
        elif what == "user-delete":
            tenancy.delete_user(user, _int(p.get("id")) or 0)
            messages.success(request, "User deleted.")
        else:
            messages.error(request, "unknown request")
    except ServiceError as exc:
        messages.error(request, f"{exc.field}: {exc.message}" if exc.field else exc.message)
    return redirect(back)


def _limit_value(raw: str | None) -> int:
    """A limit typed into a form: a whole number, -1 for unlimited (the range is the service's)."""
    text = (raw or "").strip()
    if text in ("∞", "unlimited"):
        return quotas.UNLIMITED
    if not (text.lstrip("-").isdigit() and len(text) <= 17):
        raise InvalidInput(f"limit must be a whole number from -1 (unlimited) to {quotas.MAX_LIMIT}", field="limit")
    return int(text)


@login_required
def quota_page(request: HttpRequest) -> HttpResponse:
    """Quotas with usage bars: a cloud admin sets the cloud-wide defaults and the limits of the
    switcher's project; an organization admin sees the usage and limits of their projects."""
    user = request.user
    admin = is_cloud_admin(user)
    org_ids = list(Organization.objects.restrict(user, "admin").values_list("pk", flat=True))
    if not admin and not org_ids:
        raise Http404("nothing to administer")
    active = getattr(request, "project", None)
    selected = Project.objects.restrict(user, "admin").filter(pk=active.pk).first() if active else None
    org_projects = (
        Project.objects.restrict(user, "view").filter(organization_id__in=org_ids).select_related("organization")
    )
    ctx = {
        "cloud_admin": admin,
        "defaults": quotas.defaults() if admin else [],
        "selected": selected,
        "selected_lines": quotas.usage(selected) if selected else [],
        "org_projects": [(p, quotas.usage(p)) for p in org_projects.order_by("organization__name", "name")],
        "unlimited": quotas.UNLIMITED,
        "max_limit": quotas.MAX_LIMIT,
    }
    return render(request, "tenants/quotas.html", ctx)


@login_required
@require_POST
def quota_action(request: HttpRequest) -> HttpResponse:
    p, user = request.POST, request.user
    try:
        what = p.get("what")
        resource = p.get("resource", "")
        if resource not in quotas.Resource.values:
            raise InvalidInput(f"resource must be one of {', '.join(quotas.Resource.values)}", field="resource")
        label = quotas.Resource(resource).label
        limit = _limit_value(p.get("limit"))
        shown = "unlimited" if limit == quotas.UNLIMITED else str(limit)
        if what == "default":
            tenancy.set_quota_default(user, resource=resource, limit=limit, ip=client_ip(request))
            messages.success(request, f"Cloud-wide default of {label}: {shown}.")
        elif what == "limit":
            project = _acting_project(request)
            tenancy.set_quota_limit(user, project=project, resource=resource, limit=limit, ip=client_ip(request))
            messages.success(request, f"{project}: {label} limited to {shown}.")
        else:
            messages.error(request, "unknown request")
    except ServiceError as exc:
        messages.error(request, f"{exc.field}: {exc.message}" if exc.field else exc.message)
    return redirect("quotas")
