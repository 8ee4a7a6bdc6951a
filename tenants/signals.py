"""Keep each project's auth group (the target of guardian grants "shared with project X")
holding exactly the project's members."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db.models.signals import post_delete, post_save

from .models import Membership, Project


def project_group(project: Project) -> Group:
    if project.group_id is None:
        group, _ = Group.objects.get_or_create(name=f"project-{project.pk}")
        Project.objects.filter(pk=project.pk).update(group=group)
        project.group = group
    assert project.group is not None
    return project.group


def _project_saved(sender: Any, instance: Project, created: bool, **_: Any) -> None:
    if created:
        project_group(instance)


def _membership_saved(sender: Any, instance: Membership, **_: Any) -> None:
    instance.user.groups.add(project_group(instance.project))


def _membership_deleted(sender: Any, instance: Membership, **_: Any) -> None:
    if instance.project.group_id:
        instance.user.groups.remove(instance.project.group_id)


def connect() -> None:
    post_save.connect(_project_saved, sender=Project, dispatch_uid="nephele-project-group")
    post_save.connect(_membership_saved, sender=Membership, dispatch_uid="nephele-membership-group")
    post_delete.connect(_membership_deleted, sender=Membership, dispatch_uid="nephele-membership-ungroup")
