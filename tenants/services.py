"""Tenancy services: the only writers of organizations, projects, users, role grants and quota
limits; every change is recorded in the audit trail.

``actor`` is the user acting; ``None`` is the system itself (LDAP provisioning at login), which
passes every check and is recorded as "system". Views and the API always pass the request's
user, never ``None``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction

from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants.querysets import Actor, is_cloud_admin

from . import quotas
from .models import Membership, Organization, OrgMembership, Project
from .roles import OrgRole, Role

User = get_user_model()


def _audit(actor: Actor, obj: Any, action: str, *, ip: str | None = None, **detail: Any) -> None:
    from monitoring.audit import record_action

    record_action(actor, obj, action, ip=ip, project=obj if isinstance(obj, Project) else None, **detail)


def _require_cloud_admin(actor: Actor) -> None:
    if not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators may do this")


def _require_cloud_admin_or_system(actor: Actor) -> None:
    if actor is not None:
        _require_cloud_admin(actor)


def _gate(model: Any, actor: Actor, action: str) -> models.QuerySet[Any]:
    """``model``'s rows ``actor`` may ``action`` (all of them for the system)."""
    return model.objects.all() if actor is None else model.objects.restrict(actor, action)  # type: ignore[no-any-return]


def _name(value: Any, field: str = "name", limit: int = 100) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= limit:
        raise InvalidInput(f"{field} must be 1 to {limit} characters", field=field)
    return text


def _text(value: Any, field: str, limit: int = 4000) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(f"{field} is text of at most {limit} characters", field=field)
    return value


def _flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false", field=field)
    return value


def _save_new(obj: models.Model, message: str) -> None:
    """Insert ``obj``; a concurrent twin (unique name) is a 409 naming the name, not a 500."""
    try:
        with transaction.atomic():  # a savepoint: the caller's transaction survives the refusal
            obj.save()
    except IntegrityError:
        raise Conflict(message, field="name") from None


# -- organizations ----------------------------------------------------------------------------
@transaction.atomic
def create_organization(
    actor: Actor,
    *,
    name: str,
    description: str = "",
    require_2fa: bool = False,
    enabled: bool = True,
    ip: str | None = None,
) -> Organization:
    """A new organization (tenant): cloud administrators, or the system."""
    _require_cloud_admin_or_system(actor)
    name = _name(name)
    if Organization.objects.filter(name=name).exists():
        raise Conflict(f"an organization named {name!r} exists already", field="name")
    org = Organization(
        name=name,
        description=_text(description or "", "description"),
        require_2fa=_flag(require_2fa, "require_2fa"),
        enabled=_flag(enabled, "enabled"),
    )
    _save_new(org, f"an organization named {name!r} exists already")
    _audit(actor, org, "create", ip=ip, require_2fa=org.require_2fa, enabled=org.enabled)
    return org


ORG_FIELDS = frozenset({"name", "description", "require_2fa", "enabled"})


@transaction.atomic
def update_organization(actor: Actor, org_id: int, *, ip: str | None = None, **fields: Any) -> Organization:
    """Rename, describe, require a second factor (organization admins); enable or disable
    (cloud administrators only)."""
    org: Organization | None = _gate(Organization, actor, "admin").select_for_update().filter(pk=org_id).first()
    if org is None:
        raise NotFound("organization not found")
    unknown = set(fields) - ORG_FIELDS
    if unknown:
        raise InvalidInput(f"cannot set {', '.join(sorted(unknown))} on an organization", field=sorted(unknown)[0])
    was_enabled = org.enabled
    if "enabled" in fields:
        if actor is not None and not is_cloud_admin(actor):
            raise PermissionDenied("only cloud administrators enable or disable organizations", field="enabled")
        org.enabled = _flag(fields["enabled"], "enabled")
    if "require_2fa" in fields:
        org.require_2fa = _flag(fields["require_2fa"], "require_2fa")
    if "description" in fields:
        org.description = _text(fields["description"] or "", "description")
    if "name" in fields:
        org.name = _name(fields["name"])
        if Organization.objects.filter(name=org.name).exclude(pk=org.pk).exists():
            raise Conflict(f"an organization named {org.name!r} exists already", field="name")
    org.save()
    _audit(actor, org, "update", ip=ip, **{k: str(v) for k, v in fields.items()})
    if org.enabled != was_enabled:
        _audit(actor, org, "enable" if org.enabled else "disable", ip=ip)
    return org


@transaction.atomic
def delete_organization(actor: Actor, org_id: int, *, ip: str | None = None) -> None:
    """Delete an organization that has no projects left (409 naming them); cloud administrators."""
    _require_cloud_admin(actor)
    org: Organization | None = _gate(Organization, actor, "admin").select_for_update().filter(pk=org_id).first()
    if org is None:
        raise NotFound("organization not found")
    names = list(org.projects.order_by("name").values_list("name", flat=True))
    if names:
        raise Conflict(f"organization {org.name} still has projects: {', '.join(names)}", field="organization")
    _audit(actor, org, "delete", ip=ip)
    org.delete()  # its organization roles go with it


@transaction.atomic
def ensure_organization(actor: Actor, name: str, *, ip: str | None = None, **detail: Any) -> tuple[Organization, bool]:
    """The organization named ``name``, created when missing (provisioning); ``(org, created)``."""
    org = Organization.objects.filter(name=name).first()
    if org is not None:
        return org, False
    try:
        with transaction.atomic():
            return create_organization(actor, name=name, ip=ip), True
    except InvalidInput:
        found = Organization.objects.filter(name=name).first()  # created meanwhile by a twin login
        if found is None:
            raise
        return found, False


# -- projects ---------------------------------------------------------------------------------
@transaction.atomic
def create_project(
    actor: Actor, *, organization: Organization | int, name: str, description: str = "", ip: str | None = None
) -> Project:
    """A new project in ``organization`` (its admins, cloud administrators, or the system)."""
    org_id = organization.pk if isinstance(organization, Organization) else organization
    org: Organization | None = _gate(Organization, actor, "admin").filter(pk=org_id).first()
    if org is None:
        raise NotFound("organization not found", field="organization")
    name = _name(name)
    message = f"{org.name} has a project named {name!r} already"
    if Project.objects.filter(organization=org, name=name).exists():
        raise Conflict(message, field="name")
    project = Project(organization=org, name=name, description=_text(description or "", "description"))
    _save_new(project, message)
    _audit(actor, project, "create", ip=ip)
    return project


@transaction.atomic
def ensure_project(
    actor: Actor, organization: Organization, name: str, *, ip: str | None = None
) -> tuple[Project, bool]:
    """The project ``name`` of ``organization``, created when missing (provisioning)."""
    project = Project.objects.filter(organization=organization, name=name).first()
    if project is not None:
        return project, False
    try:
        with transaction.atomic():
            return create_project(actor, organization=organization, name=name, ip=ip), True
    except InvalidInput:
        found = Project.objects.filter(organization=organization, name=name).first()
        if found is None:
            raise
        return found, False


def owned_resources(project: Project) -> list[str]:
    """What still lives in a project, as readable lines."""
    from compute.models import VirtualMachine
    from compute.states import VMState

    return [
        f"VM {vm.name} (#{vm.pk}, {vm.state})"
        for vm in VirtualMachine.objects.filter(project=project).exclude(state=VMState.DONE).order_by("pk")
    ]


@transaction.atomic
def delete_project(actor: Actor, project_id: int, *, ip: str | None = None) -> None:
    project = Project.objects.restrict(actor, "admin").select_for_update().filter(pk=project_id).first()
    if project is None:
        raise NotFound("project not found")
    owned = owned_resources(project)
    if owned:
        raise Conflict(f"project {project} still owns: {'; '.join(owned)}")
    _audit(actor, project, "delete", ip=ip)
    from compute.models import BootImage, VirtualMachine, VMTemplate

    VirtualMachine.objects.filter(project=project).delete()  # DONE VMs only, kept for accounting until now
    VMTemplate.objects.filter(project=project).delete()
    BootImage.objects.filter(project=project).delete()
    project.delete()


# -- users ------------------------------------------------------------------------------------
@transaction.atomic
def create_user(actor: Actor, *, username: str, email: str = "", password: str | None = None, **names: str) -> Any:
    _require_cloud_admin(actor)
    username = _name(username, "username", 150)
    if User.objects.filter(username=username).exists():
        raise Conflict(f"user {username!r} exists already", field="username")
    user = User(username=username, email=email, **names)
    if password:
        _check_password(password, user)
        user.set_password(password)
    else:
        user.set_unusable_password()  # SSO-only account
    user.save()
    _audit(actor, user, "create")
    return user


def _check_password(password: str, user: Any) -> None:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise InvalidInput("password: " + " ".join(exc.messages), field="password") from None


@transaction.atomic
def set_user_active(actor: Actor, user_id: int, active: bool) -> Any:
    _require_cloud_admin(actor)
    user = User.objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise NotFound("user not found")
    if actor is not None and user.pk == actor.pk and not active:
        raise InvalidInput("you cannot disable yourself", field="is_active")
    user.is_active = active
    user.save(update_fields=["is_active"])
    if not active:
        from django.contrib.sessions.models import Session

        for s in Session.objects.all():  # end the user's sessions at once
            if s.get_decoded().get("_auth_user_id") == str(user.pk):
                s.delete()
    _audit(actor, user, "enable" if active else "disable")
    return user


@transaction.atomic
def reset_credentials(actor: Actor, user_id: int, *, password: str) -> Any:
    """Set a new password, revoke the user's API tokens and reset their second factor."""
    _require_cloud_admin(actor)
    from .credentials import refuse_confined

    refuse_confined(actor, "change passwords")
    user = User.objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise NotFound("user not found")
    _check_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    from django.utils import timezone

    user.api_tokens.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
    from django_otp.plugins.otp_totp.models import TOTPDevice

    TOTPDevice.objects.filter(user=user).delete()
    _audit(actor, user, "reset-credentials")
    return user


@transaction.atomic
def delete_user(actor: Actor, user_id: int) -> None:
    _require_cloud_admin(actor)
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound("user not found")
    from compute.models import VirtualMachine
    from compute.states import VMState

    live = VirtualMachine.objects.filter(owner=user).exclude(state=VMState.DONE).count()
    if live:
        raise Conflict(f"user {user.username} still owns {live} VM(s); terminate them or disable the user")
    _audit(actor, user, "delete")
    user.is_active = False  # rows referencing the user (accounting) are kept; the account is closed
    user.username = f"deleted-{user.pk}-{user.username}"[:150]
    user.set_unusable_password()
    user.save()


# -- role grants ------------------------------------------------------------------------------
RoleRow = TypeVar("RoleRow", Membership, OrgMembership)


def _put_role(
    actor: Actor,
    scope: Any,
    model: type[RoleRow],
    key: dict[str, Any],
    role: str | None,
    *,
    ip: str | None,
    **detail: Any,
) -> RoleRow | None:
    """Make the one role row ``key`` picks (a project's or an organization's membership of a
    user) hold ``role``, or remove it (None), audited on ``scope``; the same role again is a no-op."""
    user = key["user"]
    current = model._default_manager.select_for_update().filter(**key).first()
    if role is None:
        if current is not None:
            current.delete()
            _audit(actor, scope, "revoke-role", ip=ip, user=user.username, role=current.role, **detail)
        return None
    if current is not None and current.role == role:
        return current
    if current is None:
        current = model._default_manager.create(**key, role=role)
    else:
        current.role = role
        current.save(update_fields=["role"])
    _audit(actor, scope, "grant-role", ip=ip, user=user.username, role=role, **detail)
    return current


@transaction.atomic
def grant_project_role(
    actor: Actor,
    *,
    project: Project,
    user: Any,
    role: str | None,
    ip: str | None = None,
    new_member: bool = False,
    **detail: Any,
) -> Membership | None:
    """Give ``user`` ``role`` on ``project`` (None: remove). Project, org and cloud admins may
    (and the system). Granting the role the user holds already changes and records nothing.

    ``new_member``: the caller adds a member (the portal's "Grant"), so a user who holds a role
    already is refused (409) instead of having it replaced; changing a role is its own request."""
    if not _gate(Project, actor, "admin").filter(pk=project.pk).exists():
        raise NotFound("project not found", field="project")
    if role is not None and role not in Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Role.values)}", field="role")
    if new_member:
        held = Membership.objects.select_for_update().filter(project=project, user=user).first()
        if held is not None:
            raise Conflict(
                f"{user.username} is already a member of {project} as {held.get_role_display()}; "
                "use Change role to change it",
                field="username",
            )
    # deleting a Membership: the signal takes the user out of the project's group
    return _put_role(actor, project, Membership, {"project": project, "user": user}, role, ip=ip, **detail)


@transaction.atomic
def grant_org_role(
    actor: Actor, *, organization: Organization, user: Any, role: str | None, ip: str | None = None
) -> OrgMembership | None:
    """Give ``user`` ``role`` on the whole ``organization`` (None: remove)."""
    if not _gate(Organization, actor, "admin").filter(pk=organization.pk).exists():
        raise NotFound("organization not found", field="organization")
    if role is not None and role not in OrgRole.values:
        raise InvalidInput(f"role must be one of {', '.join(OrgRole.values)}", field="role")
    return _put_role(actor, organization, OrgMembership, {"organization": organization, "user": user}, role, ip=ip)


# -- quotas -----------------------------------------------------------------------------------
@transaction.atomic
def set_quota_limit(
    actor: Actor, *, project: Project, resource: str, limit: int, user: Any = None, ip: str | None = None
) -> None:
    """Set a project's (or one user's in it) limit of ``resource``; -1 is unlimited. Cloud
    administrators only."""
    _require_cloud_admin(actor)
    if not Project.objects.restrict(actor, "admin").filter(pk=project.pk).exists():
        raise NotFound("project not found", field="project")
    quotas.set_limit(project, resource, limit, user)
    _audit(actor, project, "set-quota", ip=ip, resource=resource, limit=limit, user=getattr(user, "username", None))


@transaction.atomic
def set_quota_default(actor: Actor, *, resource: str, limit: int, ip: str | None = None) -> None:
    """Set the cloud-wide default limit of ``resource`` (every project without its own); -1 is
    unlimited. Cloud administrators only; audited on the actor (a default has no project)."""
    _require_cloud_admin(actor)
    row = quotas.set_default(resource, limit)
    _audit(actor, row, "set-quota-default", ip=ip, resource=resource, limit=limit)
