"""Credentials services: API tokens and SSH keys (the only writers of those rows)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from tenants.querysets import token_project_id

from .models import ApiToken, Project, SSHKey

TOKEN_PREFIX = "nph"
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def max_token_days() -> int:
    """The longest lifetime of a token (``NEPHELE_TOKEN_MAX_DAYS``), also the default one."""
    return max(1, int(settings.NEPHELE_TOKEN_MAX_DAYS))


def is_confined(token: Any) -> bool:
    """True for an API token confined to one project."""
    return isinstance(token, ApiToken) and token.project_id is not None


def refuse_confined(user: Any, what: str) -> None:
    """Account- and cloud-wide actions are out of reach of a project-confined token (the scope
    travels on the user object, as for the access gate)."""
    if token_project_id(user) is not None:
        raise PermissionDenied(
            f"a token confined to a project cannot {what}; use an unconfined token or sign in to the portal"
        )


@transaction.atomic
def create_token(
    user: Any,
    *,
    name: str,
    days: int | None = None,
    project: Project | int | None = None,
    parent: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """A new token; the secret is returned once and never stored.

    Every token expires: ``days`` (1 to ``NEPHELE_TOKEN_MAX_DAYS``; absent: the maximum). A token
    created with a confined token (``parent``) is confined to the same project and expires no
    later than it (absent ``days``: at the parent's expiry)."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("name must be 1 to 64 characters", field="name")
    limit = max_token_days()
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= limit):
        raise InvalidInput(f"days must be between 1 and {limit} (the limit, NEPHELE_TOKEN_MAX_DAYS)", field="days")
    now = timezone.now()
    expires_at = now + timedelta(days=days if days is not None else limit)
    project_id = project.pk if isinstance(project, Project) else project
    if is_confined(parent):
        assert parent is not None
        if project_id is None:
            project_id = parent.project_id
        elif project_id != parent.project_id:
            raise PermissionDenied(
                f"this token is confined to project {parent.project_id}: a token it creates is confined to it too",
                field="project",
            )
        if parent.expires_at is not None and expires_at > parent.expires_at:
            if days is not None:
                left = max(0, (parent.expires_at - now).days)
                raise InvalidInput(
                    f"days: a token created with a confined token cannot outlive it (it expires at "
                    f"{parent.expires_at.isoformat(timespec='seconds')}, in {left} full days)",
                    field="days",
                )
            expires_at = parent.expires_at
    found = None
    if project_id is not None:
        found = Project.objects.restrict(user, "view").filter(pk=project_id).first()
        if found is None:
            raise NotFound("project not found", field="project")
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user, name=name, prefix=prefix, digest=_digest(secret), project=found, expires_at=expires_at
    )
    return token, secret


def resolve_token(secret: str) -> ApiToken | None:
    """The live token behind ``secret``, or None (unknown, wrong, expired or revoked)."""
    parts = secret.split("_", 2)  # the random part may itself contain "_"
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=parts[1]).first()
    if token is None or not hmac.compare_digest(token.digest, _digest(secret)):
        return None
    now = timezone.now()
    # a token without an expiry (none are made any more) is refused like an expired one
    if token.revoked_at or token.expires_at is None or token.expires_at <= now or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def revoke_token(user: Any, token_id: int, *, acting: ApiToken | None = None) -> ApiToken:
    """Revoke one of the user's tokens; a confined token (``acting``) only revokes itself."""
    if is_confined(acting) and acting is not None and acting.pk != token_id:
        raise NotFound("token not found")
    token = ApiToken.objects.filter(pk=token_id, user=user).first()
    if token is None:
        raise NotFound("token not found")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def fingerprint(public_key: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key line, or InvalidInput naming what is wrong."""
    parts = public_key.strip().split()
    if len(parts) < 2 or parts[0] not in SSH_KEY_TYPES:
        raise InvalidInput(f"public_key must start with one of {', '.join(SSH_KEY_TYPES)}", field="public_key")
    try:
        load_ssh_public_key(f"{parts[0]} {parts[1]}".encode())
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"public_key is not a valid {parts[0]} key: {exc}", field="public_key") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


@transaction.atomic
def add_ssh_key(user: Any, *, name: str, public_key: str) -> SSHKey:
    refuse_confined(user, "add SSH keys")
    name = (name or "").strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("name must be 1 to 64 characters", field="name")
    if len(public_key) > 16384:
        raise InvalidInput("public_key is longer than 16384 characters", field="public_key")
    fp = fingerprint(public_key)
    if SSHKey.objects.filter(user=user, fingerprint=fp).exists():
        raise Conflict(f"this key is already registered ({fp})", field="public_key")
    return SSHKey.objects.create(user=user, name=name, public_key=" ".join(public_key.split()[:3]), fingerprint=fp)


@transaction.atomic
def delete_ssh_key(user: Any, key_id: int) -> None:
    refuse_confined(user, "delete SSH keys")
    if not SSHKey.objects.filter(pk=key_id, user=user).delete()[0]:
        raise NotFound("key not found")


def token_expired(expires_at: datetime | None) -> bool:
    return bool(expires_at and expires_at <= timezone.now())
