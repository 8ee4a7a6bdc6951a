"""Django admin for tenancy: read-only. Organizations, projects and memberships change through
``tenants.services`` (the identity page and the API), so every change is checked and audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from portal.admin import ReadOnlyStateAdmin

from .models import Membership, Organization, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    can_delete = False
    readonly_fields = ["user", "role"]

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "organization"]
    inlines = [MembershipInline]


@admin.register(Organization)
class OrganizationAdmin(ReadOnlyStateAdmin):
    list_display = ["name", "enabled", "require_2fa"]
