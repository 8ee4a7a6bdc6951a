"""Tenancy services: the only writers of organizations, projects, users and role grants."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants.querysets import is_cloud_admin

from .models import Membership, Organization, OrgMembership, Project
from .roles import OrgRole, Role

User = get_user_model()


def _audit(actor: Any, obj: Any, action: str, **detail: Any) -> None:
    from monitoring.audit import record_action

    record_action(actor, obj, action, project=obj if isinstance(obj, Project) else None, **detail)


def _require_cloud_admin(actor: Any) -> None:
    if not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators may do this")


def _name(value: str, field: str = "name", limit: int = 100) -> str:
    value = (value or "").strip()
    if not 1 <= len(value) <= limit:
        raise InvalidInput(f"{field} must be 1 to {limit} characters", field=field)
    return value


# -- organizations ----------------------------------------------------------------------------
@transaction.atomic
def create_organization(actor: Any, *, name: str, description: str = "", require_2fa: bool = False) -> Organization:
    _require_cloud_admin(actor)
    name = _name(name)
    if Organization.objects.filter(name=name).exists():
        raise InvalidInput(f"an organization named {name!r} exists already", field="name")
    org = Organization.objects.create(name=name, description=description, require_2fa=require_2fa)
    _audit(actor, org, "create")
    return org


@transaction.atomic
def update_organization(actor: Any, org_id: int, **fields: Any) -> Organization:
    org = Organization.objects.restrict(actor, "admin").select_for_update().filter(pk=org_id).first()
    if org is None:
        raise NotFound("organization not found")
    for key in ("description", "require_2fa", "enabled"):
        if key in fields:
            if key == "enabled" and not is_cloud_admin(actor):
                raise PermissionDenied("only cloud administrators enable or disable organizations", field="enabled")
            setattr(org, key, fields[key])
    if "name" in fields:
        org.name = _name(fields["name"])
    org.save()
    _audit(actor, org, "update", **{k: str(v) for k, v in fields.items()})
    return org


# -- projects ---------------------------------------------------------------------------------
@transaction.atomic
def create_project(actor: Any, *, organization: Organization, name: str, description: str = "") -> Project:
    if not Organization.objects.restrict(actor, "admin").filter(pk=organization.pk).exists():
        raise NotFound("organization not found", field="organization")
    name = _name(name)
    if Project.objects.filter(organization=organization, name=name).exists():
        raise InvalidInput(f"{organization.name} has a project named {name!r} already", field="name")
    project = Project.objects.create(organization=organization, name=name, description=description)
    _audit(actor, project, "create")
    return project


def owned_resources(project: Project) -> list[str]:
    """What still lives in a project, as readable lines."""
    from compute.models import VirtualMachine
    from compute.states import VMState

    return [
        f"VM {vm.name} (#{vm.pk}, {vm.state})"
        for vm in VirtualMachine.objects.filter(project=project).exclude(state=VMState.DONE).order_by("pk")
    ]


@transaction.atomic
def delete_project(actor: Any, project_id: int) -> None:
    project = Project.objects.restrict(actor, "admin").select_for_update().filter(pk=project_id).first()
    if project is None:
        raise NotFound("project not found")
    owned = owned_resources(project)
    if owned:
        raise Conflict(f"project {project} still owns: {'; '.join(owned)}")
    _audit(actor, project, "delete")
    from compute.models import BootImage, VirtualMachine, VMTemplate

    VirtualMachine.objects.filter(project=project).delete()  # DONE VMs only, kept for accounting until now
    VMTemplate.objects.filter(project=project).delete()
    BootImage.objects.filter(project=project).delete()
    project.delete()


# -- users ------------------------------------------------------------------------------------
@transaction.atomic
def create_user(actor: Any, *, username: str, email: str = "", password: str | None = None, **names: str) -> Any:
    _require_cloud_admin(actor)
    username = _name(username, "username", 150)
    if User.objects.filter(username=username).exists():
        raise InvalidInput(f"user {username!r} exists already", field="username")
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
def set_user_active(actor: Any, user_id: int, active: bool) -> Any:
    _require_cloud_admin(actor)
    user = User.objects.select_for_update().filter(pk=user_id).first()
    if user is None:
        raise NotFound("user not found")
    if user.pk == actor.pk and not active:
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
def reset_credentials(actor: Any, user_id: int, *, password: str) -> Any:
    """Set a new password, revoke the user's API tokens and reset their second factor."""
    _require_cloud_admin(actor)
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
def delete_user(actor: Any, user_id: int) -> None:
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
@transaction.atomic
def grant_project_role(actor: Any, *, project: Project, user: Any, role: str | None) -> Membership | None:
    """Give ``user`` ``role`` on ``project`` (None: remove). Project, org and cloud admins may."""
    if not Project.objects.restrict(actor, "admin").filter(pk=project.pk).exists():
        raise NotFound("project not found", field="project")
    if role is not None and role not in Role.values:
        raise InvalidInput(f"role must be one of {', '.join(Role.values)}", field="role")
    if role is None:
        Membership.objects.filter(project=project, user=user).delete()
        _audit(actor, project, "revoke-role", user=user.username)
        return None
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    _audit(actor, project, "grant-role", user=user.username, role=role)
    return membership


@transaction.atomic
def grant_org_role(actor: Any, *, organization: Organization, user: Any, role: str | None) -> OrgMembership | None:
    if not Organization.objects.restrict(actor, "admin").filter(pk=organization.pk).exists():
        raise NotFound("organization not found", field="organization")
    if role is None:
        OrgMembership.objects.filter(organization=organization, user=user).delete()
        return None
    if role not in OrgRole.values:
        raise InvalidInput(f"role must be one of {', '.join(OrgRole.values)}", field="role")
    m, _ = OrgMembership.objects.update_or_create(organization=organization, user=user, defaults={"role": role})
    _audit(actor, organization, "grant-role", user=user.username, role=role)
    return m
