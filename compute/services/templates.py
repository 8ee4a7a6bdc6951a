"""VM templates (instance types): the only writers of ``VMTemplate`` rows.

Every reference a request names is resolved through the access gate here, whoever calls: the
project must be one the actor manages, the boot image one the actor may see (their projects',
shared with them, or public). A foreign object answers 404 exactly like a missing one.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction

from monitoring.audit import record_action
from portal.errors import InvalidInput, NotFound, PermissionDenied
from tenants.models import Project
from tenants.querysets import Actor, is_cloud_admin

from ..models import BootImage, Cluster, VMTemplate, name_validator
from ..states import RestartPolicy
from .lifecycle import validate_capacity
from .references import delete_row, refuse_if_used

#: the fields a template service call may set
FIELDS = frozenset(
    {
        "project", "name", "description", "vcpu", "memory_mb", "disk_gb", "boot_image", "required_labels",
        "hypervisor", "cluster", "public", "restart_policy", "ha", "graphics",
    }
)  # fmt: skip
HYPERVISOR_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,15}$")
MAX_DESCRIPTION = 4000
MAX_LABEL = 63


def _pk(value: Any, field: str) -> int:
    """A primary key from a model instance or a number; anything else is a 400 naming ``field``."""
    pk = getattr(value, "pk", value)
    if isinstance(pk, bool) or not isinstance(pk, int | str) or not str(pk).isdigit():
        raise InvalidInput(f"{field} must be an id", field=field)
    return int(pk)


def manageable_project(actor: Actor, project: Any) -> Project:
    """The project, if ``actor`` may create and change things in it; 404 otherwise."""
    found = Project.objects.restrict(actor, "manage").filter(pk=_pk(project, "project")).first()
    if found is None:
        raise NotFound("project not found", field="project")
    return found


def usable_boot_image(actor: Actor, boot_image: Any) -> BootImage | None:
    """The boot image, if ``actor`` may use it (see it: own projects', shared or public); 404 otherwise."""
    if boot_image in (None, ""):
        return None
    found = BootImage.objects.restrict(actor, "view").filter(pk=_pk(boot_image, "boot_image")).first()
    if found is None:
        raise NotFound("boot image not found", field="boot_image")
    return found


def _cluster(value: Any) -> Cluster | None:
    # Clusters are infrastructure (only administrators list them), but any project may pin its
    # templates to one as a placement requirement, as the template form offers them all.
    if value in (None, ""):
        return None
    found = Cluster.objects.filter(pk=_pk(value, "cluster")).first()
    if found is None:
        raise NotFound("cluster not found", field="cluster")
    return found


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be a whole number", field=field)
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false", field=field)
    return value


def _str(value: Any, field: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text", field=field)
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters", field=field)
    return value


def validate_labels(value: Any, field: str = "required_labels") -> dict[str, str]:
    """Host labels a VM needs: a mapping of non-empty strings to strings."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f'{field} must be a mapping of label to value, e.g. {{"zone": "a"}}', field=field)
    for key, val in value.items():
        if not isinstance(key, str) or not isinstance(val, str) or not key.strip():
            raise InvalidInput(f"{field} must map label names to text values", field=field)
        if len(key) > MAX_LABEL or len(val) > MAX_LABEL:
            raise InvalidInput(f"{field}: labels and values are at most {MAX_LABEL} characters", field=field)
    return dict(value)


def _apply(actor: Actor, tpl: VMTemplate, changes: dict[str, Any]) -> None:
    """Validate ``changes`` and set them on ``tpl`` (not saved)."""
    unknown = set(changes) - FIELDS
    if unknown:
        first = sorted(unknown)[0]
        raise InvalidInput(f"cannot set {', '.join(sorted(unknown))} on a template", field=first)
    if "project" in changes:
        tpl.project = manageable_project(actor, changes["project"])
    if "name" in changes:
        name = _str(changes["name"], "name", 63).strip()
        try:
            name_validator(name)
        except ValidationError as exc:
            raise InvalidInput(f"name: {exc.messages[0]}", field="name") from None
        tpl.name = name
    if "description" in changes:
        tpl.description = _str(changes["description"] or "", "description", MAX_DESCRIPTION)
    for size in ("vcpu", "memory_mb", "disk_gb"):
        if size in changes:
            setattr(tpl, size, _int(changes[size], size))
    validate_capacity(tpl.vcpu, tpl.memory_mb, tpl.disk_gb)
    if "boot_image" in changes:
        tpl.boot_image = usable_boot_image(actor, changes["boot_image"])
    if "required_labels" in changes:
        tpl.required_labels = validate_labels(changes["required_labels"])
    if "hypervisor" in changes:
        hv = _str(changes["hypervisor"] or "", "hypervisor", 16)
        if hv and not HYPERVISOR_RE.match(hv):
            raise InvalidInput("hypervisor is a name like qemu, kvm or test (or empty: any)", field="hypervisor")
        tpl.hypervisor = hv
    if "cluster" in changes:
        tpl.cluster = _cluster(changes["cluster"])
    if "restart_policy" in changes:
        if changes["restart_policy"] not in RestartPolicy.values:
            raise InvalidInput(
                f"restart_policy must be one of {', '.join(RestartPolicy.values)}", field="restart_policy"
            )
        tpl.restart_policy = changes["restart_policy"]
    if "ha" in changes:
        tpl.ha = _bool(changes["ha"], "ha")
    if "graphics" in changes:
        tpl.graphics = _bool(changes["graphics"], "graphics")
    if "public" in changes:
        tpl.public = _bool(changes["public"], "public")
    # A public template is every project's: only cloud administrators publish or edit one.
    if tpl.public and not is_cloud_admin(actor):
        raise PermissionDenied("only cloud administrators publish templates", field="public")


def _detail(tpl: VMTemplate) -> dict[str, Any]:
    return {"vcpu": tpl.vcpu, "memory_mb": tpl.memory_mb, "disk_gb": tpl.disk_gb, "boot_image": tpl.boot_image_id}


@transaction.atomic
def create_template(
    actor: User,
    *,
    project: Any,
    name: str,
    vcpu: int,
    memory_mb: int,
    disk_gb: int = 0,
    ip: str | None = None,
    **fields: Any,
) -> VMTemplate:
    """A new template in ``project`` (which ``actor`` manages), owned by ``actor``.

    ``fields``: description, boot_image, required_labels, hypervisor, cluster, public,
    restart_policy, ha, graphics (see ``FIELDS``)."""
    if not getattr(actor, "pk", None):
        raise PermissionDenied("templates are created by a user")
    tpl = VMTemplate(owner=actor, vcpu=0, memory_mb=0)
    _apply(actor, tpl, {"project": project, "name": name, "vcpu": vcpu, "memory_mb": memory_mb,
                        "disk_gb": disk_gb, **fields})  # fmt: skip
    tpl.save()
    record_action(actor, tpl, "create", ip=ip, **_detail(tpl))
    return tpl


@transaction.atomic
def update_template(actor: Actor, template_id: Any, *, ip: str | None = None, **changes: Any) -> VMTemplate:
    """Change a template ``actor`` manages (moving it needs ``manage`` on the new project too).
    VMs made from it keep what they were made with."""
    tpl = (
        VMTemplate.objects.restrict(actor, "manage").select_for_update().filter(pk=_pk(template_id, "template")).first()
    )
    if tpl is None:
        raise NotFound("template not found", field="template")
    _apply(actor, tpl, changes)
    tpl.save()
    record_action(actor, tpl, "update", ip=ip, fields=",".join(sorted(changes)), **_detail(tpl))
    return tpl


@transaction.atomic
def delete_template(actor: Actor, template_id: Any, *, ip: str | None = None) -> None:
    """Delete a template ``actor`` manages, with its disks and NICs. VMs made from it keep
    running (their template reference is cleared); a protecting reference is a 409 naming it."""
    tpl = (
        VMTemplate.objects.restrict(actor, "manage").select_for_update().filter(pk=_pk(template_id, "template")).first()
    )
    if tpl is None:
        raise NotFound("template not found", field="template")
    what = f"template {tpl.name}"
    refuse_if_used(tpl, what, field="template")
    record_action(actor, tpl, "delete", ip=ip)
    delete_row(tpl, what, field="template")
