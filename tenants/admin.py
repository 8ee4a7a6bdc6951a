from django.contrib import admin

from .models import Membership, Organization, Project


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organization"]
    inlines = [MembershipInline]


admin.site.register(Organization)
