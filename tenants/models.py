"""Minimal tenancy: organizations contain projects; users hold a role in a project.

Every VM, template and boot image belongs to a project and an owner from the start; the
tenancy manager extends this model (roles on organizations, guardian grants, quotas).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from portal.querysets import RestrictedQuerySet

from .roles import Role


class Organization(models.Model):
    """A tenant: a customer or department owning projects."""

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class ProjectQuerySet(RestrictedQuerySet["Project"]):
    project_path = ""


class Project(models.Model):
    """A unit of ownership and isolation inside an organization."""

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="projects")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="uniq_project_name_per_org")]
        ordering = ["organization__name", "name"]

    def __str__(self) -> str:
        return f"{self.organization.name}/{self.name}"


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
