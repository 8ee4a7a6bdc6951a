"""Credentials services: API tokens and SSH keys (the only writers of those rows)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from django.db import transaction
from django.utils import timezone

from portal.errors import InvalidInput, NotFound

from .models import ApiToken, Project, SSHKey

TOKEN_PREFIX = "nph"
MAX_TOKEN_DAYS = 366
SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def create_token(
    user: Any, *, name: str, days: int | None = 90, project: Project | None = None
) -> tuple[ApiToken, str]:
    """A new token; the secret is returned once and never stored."""
    name = (name or "").strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("name must be 1 to 64 characters", field="name")
    if days is not None and not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"days must be between 1 and {MAX_TOKEN_DAYS}", field="days")
    if project is not None and not Project.objects.restrict(user, "view").filter(pk=project.pk).exists():
        raise NotFound("project not found", field="project")
    prefix = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        digest=_digest(secret),
        project=project,
        expires_at=timezone.now() + timedelta(days=days) if days else None,
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
    if token.revoked_at or (token.expires_at and token.expires_at <= now) or not token.user.is_active:
        return None
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


@transaction.atomic
def revoke_token(user: Any, token_id: int) -> ApiToken:
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
    name = (name or "").strip()
    if not 1 <= len(name) <= 64:
        raise InvalidInput("name must be 1 to 64 characters", field="name")
    if len(public_key) > 16384:
        raise InvalidInput("public_key is longer than 16384 characters", field="public_key")
    fp = fingerprint(public_key)
    if SSHKey.objects.filter(user=user, fingerprint=fp).exists():
        raise InvalidInput(f"this key is already registered ({fp})", field="public_key")
    return SSHKey.objects.create(user=user, name=name, public_key=" ".join(public_key.split()[:3]), fingerprint=fp)


@transaction.atomic
def delete_ssh_key(user: Any, key_id: int) -> None:
    if not SSHKey.objects.filter(pk=key_id, user=user).delete()[0]:
        raise NotFound("key not found")


def token_expired(expires_at: datetime | None) -> bool:
    return bool(expires_at and expires_at <= timezone.now())
