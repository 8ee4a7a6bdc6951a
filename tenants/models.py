"""Minimal tenancy: organizations contain projects; users hold a role in a project.

Every VM, template and boot image belongs to a project and an owner from the start; the
tenancy manager extends this model (roles on organizations, guardian grants, quotas).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from tenants.querysets import RestrictedQuerySet

from .roles import OrgRole, Role


class OrganizationQuerySet(RestrictedQuerySet["Organization"]):
    """Organizations the user belongs to (through a project or an organization role)."""

    def restrict(self, user, action="view"):  # type: ignore[no-untyped-def,override]
        from tenants.querysets import allowed_projects, is_cloud_admin, is_cloud_auditor, token_project_id
        from tenants.roles import org_roles_allowing

        if not getattr(user, "is_authenticated", False):
            return self.none()
        scoped = token_project_id(user)
        if scoped is not None:  # a project-confined token: its project's organization, to view only
            if action != "view":
                return self.none()
            return self.filter(pk__in=Project.objects.restrict(user, "view").values("organization_id"))
        if is_cloud_admin(user) or (action == "view" and is_cloud_auditor(user)):
            return self
        if action == "view":
            return self.filter(
                models.Q(projects__in=allowed_projects(user, "view")) | models.Q(memberships__user=user)
            ).distinct()
        return self.filter(memberships__user=user, memberships__role__in=org_roles_allowing(action))


class Organization(models.Model):
    """A tenant: a customer or department owning projects."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    require_2fa = models.BooleanField(default=False, help_text="members must use a second factor (TOTP)")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = OrganizationQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name


class ProjectQuerySet(RestrictedQuerySet["Project"]):
    project_path = ""


class Project(models.Model):
    """A unit of ownership and isolation inside an organization."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    group = models.OneToOneField(
        "auth.Group", on_delete=models.SET_NULL, null=True, blank=True, editable=False, related_name="project",
        help_text="holds the project's members: objects shared with the project are granted to it (guardian)",
    )  # fmt: skip
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="uniq_project_name_per_org")]
        ordering = ["organization__name", "name"]

    def __str__(self) -> str:
        return f"{self.organization.name}/{self.name}"


class OrgMembership(models.Model):
    """A user's role on a whole organization."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=OrgRole.choices, default=OrgRole.ADMIN)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="uniq_org_membership")]


class Membership(models.Model):
    """A user's role in a project."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} in {self.project}"


from .quotas import QuotaDefault, QuotaLimit, QuotaUsage  # noqa: E402,F401  (models of this app)


class ApiToken(models.Model):
    """A REST API / CLI credential: shown once, stored hashed, with expiry and optional project scope.

    The secret is ``nph_<prefix>_<secret>``; the prefix finds the row, the SHA-256 of the whole
    token proves it (tokens are long random strings, so a fast hash is the right tool).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64)
    prefix = models.CharField(max_length=12, unique=True)
    digest = models.CharField(max_length=64)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class SSHKey(models.Model):
    """A user's SSH public key, injected into the VMs they create."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ssh_keys")
    name = models.CharField(max_length=64)
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=80)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "fingerprint"], name="uniq_user_key")]

    def __str__(self) -> str:
        return f"{self.name} {self.fingerprint}"
