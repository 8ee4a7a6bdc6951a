"""Every id a request body or form carries is resolved through the access gate (issue 12).

Discovery walks every DRF serializer the URL conf reaches (every serializer class of the
project's apps, once ``portal.urls`` is imported: the viewsets' ``serializer_class`` and the
inline ones their actions build) and every Django form of the HTML views, and finds every
writable relational field: ``PrimaryKeyRelatedField``, ``ManyRelatedField``,
``SlugRelatedField``, ``ModelChoiceField``, ``ModelMultipleChoiceField``, and plain integer
fields (or lists of them) named like a relation of a model (``project``, ``vm``, ``*_id`` …).

- Each must be gated: ``portal.api.Ref`` in a serializer, a ``portal.forms.GatedForm`` in a
  form; or be listed in ``DIRECTORY`` (deliberately names something that is not the caller's,
  with the reason) or ``PENDING`` (resolved by its service; another area's serializer).
- Each gated, non-directory serializer field must have a row in ``PROOFS``: the real API is
  called as a member of project P naming the other tenant's object of the field's model
  (from ``FOREIGN``), and must answer 404 (or 400) naming the field, with no row count or
  quota usage changed and no task queued. A new field without a row, or whose model has no
  foreign fixture, fails ``test_every_reference_is_gated_and_proven`` with what to add.

The authorization matrix (``test_authorization_matrix.py``) is the model; its world is reused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django import forms
from django.apps import apps
from rest_framework import serializers as drf

from compute import services as compute
from portal.api import Ref
from portal.forms import GatedForm
from tests.conftest import client_for
from tests.factories import BootImageFactory, UserFactory, VMTemplateFactory

from . import matrix_extensions
from .test_authorization_matrix import _fill, _state

APPS = ("compute", "images", "storage", "network", "tenants", "monitoring", "portal", "billing", "federation")

# (serializer, field) that deliberately name what is not the caller's own; each Ref carries its reason too
DIRECTORY = {
    ("VMTemplateSerializer", "cluster"),
    ("PublicIPSerializer", "pool"),
    ("ShareSerializer", "project"),
    ("ImageCreateSerializer", "datastore"),
    ("DatablockSerializer", "datastore"),
    ("ImageActionSerializer", "datastore"),
    ("OvaImportSerializer", "datastore"),
    ("VolumeCreateSerializer", "datastore"),
    ("SaveAsImageSerializer", "datastore"),
    ("TemplateForm", "cluster"),
}
# tenants/ serializers (the tenancy work owns them): their services resolve the id through the
# gate; the API proof below still shows a foreign object refused
PENDING = {
    ("ApiTokenSerializer", "project"): "tenants: the token service resolves the project",
    ("QuotaSetSerializer", "user"): "tenants: cloud administrators only (every user is theirs to name)",
}
# admin-only endpoints: a cloud administrator may name every object of these (infrastructure),
# so there is no foreign one; a member is refused at the endpoint (the matrix shows it)
ADMIN_ENDPOINTS = {
    ("HostSerializer", "cluster"): ("POST", "/api/v1/hosts/"),
    ("HostNetworkSerializer", "host"): ("POST", "/api/v1/host-networks/"),
    ("DatastoreWriteSerializer", "clusters"): ("POST", "/api/v1/datastores/"),
    ("BootImageSerializer", "project"): ("POST", "/api/v1/boot-images/"),
    ("QuotaSetSerializer", "user"): ("POST", "/api/v1/projects/{P}/quotas/"),
}

# (serializer, field) → (method, path, other body fields[, format]); the field gets the foreign id
PROOFS: dict[tuple[str, str], tuple[Any, ...]] = {
    ("VMTemplateSerializer", "project"): ("POST", "/api/v1/templates/", {"name": "t", "vcpu": 1, "memory_mb": 64}),
    ("VMTemplateSerializer", "boot_image"): ("PATCH", "/api/v1/templates/{T}/", {}),
    ("VMCreateSerializer", "project"): ("POST", "/api/v1/vms/", {"name": "n", "template": "{T}"}),
    ("VMCreateSerializer", "template"): ("POST", "/api/v1/vms/", {"name": "n", "project": "{P}"}),
    ("VMCreateSerializer", "image"): ("POST", "/api/v1/vms/", {"name": "n", "project": "{P}", "vcpu": 1,
                                                                "memory_mb": 64}),
    ("VMCreateSerializer", "networks"): ("POST", "/api/v1/vms/", {"name": "n", "project": "{P}", "template": "{T}"}),
    ("VMCreateSerializer", "security_groups"): (
        "POST", "/api/v1/vms/", {"name": "n", "project": "{P}", "template": "{T}"}
    ),
    ("VMActionSerializer", "host"): ("POST", "/api/v1/vms/{V}/action/", {"action": "deploy"}),
    ("NetworkSerializer", "project"): ("POST", "/api/v1/networks/", {"name": "n", "cidr4": "10.50.0.0/24"}),
    ("AddressRangeSerializer", "network"): (
        "POST", "/api/v1/address-ranges/", {"first": "10.77.0.100", "last": "10.77.0.110"}
    ),
    ("LeaseSerializer", "network"): ("POST", "/api/v1/leases/", {"address": "10.77.0.200"}),
    ("ReservationSerializer", "network"): (
        "POST", "/api/v1/reservations/", {"project": "{P}", "name": "r", "first": "10.77.0.50", "last": "10.77.0.60"}
    ),
    ("ReservationSerializer", "project"): (
        "POST", "/api/v1/reservations/", {"network": "{NN}", "name": "r", "first": "10.0.0.50", "last": "10.0.0.60"}
    ),
    ("RuleSerializer", "group"): ("POST", "/api/v1/security-group-rules/", {"protocol": "tcp", "cidr": "0.0.0.0/0"}),
    ("RuleSerializer", "remote_group"): ("POST", "/api/v1/security-group-rules/", {"group": "{NSG}"}),
    ("SecurityGroupSerializer", "project"): ("POST", "/api/v1/security-groups/", {"name": "g"}),
    ("PublicIPSerializer", "project"): ("POST", "/api/v1/public-ips/", {}),
    ("AssociateSerializer", "nic"): ("POST", "/api/v1/public-ips/{NPI}/associate/", {}),
    ("NicSerializer", "vm"): ("POST", "/api/v1/nics/", {"network": "{NN}"}),
    ("NicSerializer", "network"): ("POST", "/api/v1/nics/", {"vm": "{V}"}),
    ("NicSerializer", "reservation"): ("POST", "/api/v1/nics/", {"vm": "{V}", "network": "{NN}"}),
    ("NicSerializer", "groups"): ("POST", "/api/v1/nics/", {"vm": "{V}", "network": "{NN}"}),
    ("NicGroupsSerializer", "security_groups"): ("POST", "/api/v1/nics/{NIC}/security-groups/", {}),
    ("TemplateNicSerializer", "template"): ("POST", "/api/v1/template-nics/", {"network": "{NN}"}),
    ("TemplateNicSerializer", "network"): ("POST", "/api/v1/template-nics/", {"template": "{T}"}),
    ("TemplateNicSerializer", "security_groups"): (
        "POST", "/api/v1/template-nics/", {"template": "{T}", "network": "{NN}"}
    ),
    ("ImageCreateSerializer", "project"): ("POST", "/api/v1/images/", {"name": "i"}),
    ("DatablockSerializer", "project"): ("POST", "/api/v1/images/datablock/", {"name": "d", "size_gb": 1}),
    ("OvaImportSerializer", "project"): ("POST", "/api/v1/images/import-ovf/", {}, "multipart"),
    ("VolumeCreateSerializer", "project"): ("POST", "/api/v1/volumes/", {"name": "v", "size_bytes": 1048576}),
    ("VolumeCreateSerializer", "image"): ("POST", "/api/v1/volumes/", {"name": "v", "project": "{P}"}),
    ("AttachSerializer", "vm"): ("POST", "/api/v1/volumes/{VOL}/attach/", {}),
    ("SnapshotRefSerializer", "snapshot"): ("POST", "/api/v1/volumes/{VOL}/revert/", {}),
    ("TemplateDiskCreateSerializer", "template"): ("POST", "/api/v1/template-disks/", {"size_bytes": 1048576}),
    ("TemplateDiskCreateSerializer", "image"): ("POST", "/api/v1/template-disks/", {"template": "{T}"}),
    ("ProjectWriteSerializer", "organization"): ("POST", "/api/v1/projects/", {"name": "p2"}),
    ("ApiTokenSerializer", "project"): ("POST", "/api/v1/tokens/", {"name": "t"}),
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# discovery
# --------------------------------------------------------------------------------------------
def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _ours(cls: type) -> bool:
    return cls.__module__.split(".")[0] in APPS


def _relation_names() -> set[str]:
    """Names of every relation of the project's models (an integer field so named is an id)."""
    out = set()
    for model in apps.get_models():
        if model._meta.app_label in (*APPS, "auth"):
            out |= {f.name for f in model._meta.get_fields() if f.is_relation}
    return out


def _model_of(field: Any) -> Any:
    ref = field if isinstance(field, Ref) else getattr(field, "child_relation", getattr(field, "child", None))
    if isinstance(ref, Ref):
        return ref
    return None


def serializer_references() -> list[tuple[str, str, Any]]:
    """(serializer, field, the Ref or None when ungated) of every writable id field."""
    import portal.urls  # noqa: F401 - every API module (and so every serializer) is imported

    names = _relation_names()
    out = []
    seen = set()
    for cls in _subclasses(drf.BaseSerializer):
        if not _ours(cls) or cls in seen or cls.__name__ in ("ListSerializer",):
            continue
        if issubclass(cls, drf.ModelSerializer) and not hasattr(cls, "Meta"):
            continue  # an abstract base (portal.api.ModelSerializer)
        seen.add(cls)
        for name, field in cls().fields.items():
            if field.read_only:
                continue
            ref = _model_of(field)
            child = getattr(field, "child_relation", getattr(field, "child", None))
            relational = isinstance(field, drf.RelatedField | drf.ManyRelatedField) or isinstance(
                child, drf.RelatedField
            )
            integer = isinstance(field, drf.IntegerField) or isinstance(child, drf.IntegerField)
            source = getattr(field, "source", None) or name
            id_like = integer and (name in names or name.rstrip("s") in names or source.endswith("_id"))
            if ref is not None or relational or id_like:
                out.append((cls.__name__, name, ref))
    return sorted(out, key=lambda r: (r[0], r[1]))


def form_references() -> list[tuple[str, str, bool]]:
    """(form, field, gated) of every model choice field of the project's forms."""
    import portal.urls  # noqa: F401

    out = []
    for cls in set(_subclasses(forms.BaseForm)):
        if not _ours(cls):
            continue
        for name, field in cls.base_fields.items():
            if isinstance(field, forms.ModelChoiceField):
                out.append((cls.__name__, name, issubclass(cls, GatedForm)))
    return sorted(out)


# --------------------------------------------------------------------------------------------
# the other tenant's objects, one per model a reference may name
# --------------------------------------------------------------------------------------------
def _foreign(other: Any, theirs: Any, admin: Any, ids: dict[str, Any]) -> dict[str, Callable[[], int]]:
    from network.services import networks, nics, secgroups
    from tests.images.factories import image_datastore, ready_image
    from tests.network.factories import make_network

    made: dict[str, Any] = {}

    def template() -> int:
        made.setdefault("T", VMTemplateFactory(project=theirs, owner=other, vcpu=1, memory_mb=64, public=False))
        return int(made["T"].pk)

    def network() -> int:
        made.setdefault("N", make_network(other, theirs, "theirs", "10.77.0.0/24"))
        return int(made["N"].pk)

    def vm() -> int:
        if "V" not in made:
            tpl = VMTemplateFactory(project=theirs, owner=other, vcpu=1, memory_mb=64, public=False)
            (made["V"],) = compute.create_vms(other, project=theirs, template=tpl, name="theirs", hold=True)
        return int(made["V"].pk)

    def nic() -> int:
        return int(nics.attach_nic(other, vm(), network=network()).pk)

    def snapshot() -> int:
        from storage import tasks_volumes
        from storage.services import volumes

        vol = volumes.create_volume(other, project=theirs, name="theirs", size_bytes=1048576)
        tasks_volumes.run_volume_step(vol.pk, vol.operation_seq)
        return int(volumes.snapshot_volume(other, vol.pk, "s").pk)

    return {
        "tenants.project": lambda: int(theirs.pk),
        "tenants.organization": lambda: int(theirs.organization_id),
        "auth.user": lambda: int(other.pk),
        "compute.vmtemplate": template,
        "compute.bootimage": lambda: int(BootImageFactory(project=theirs, owner=other, public=False).pk),
        "compute.virtualmachine": vm,
        "compute.host": lambda: int(ids["H"]),  # infrastructure: outside every member's scope
        "network.virtualnetwork": network,
        "network.securitygroup": lambda: int(secgroups.create_group(other, project=theirs, name="theirs").pk),
        "network.vmnic": nic,
        "network.reservation": lambda: int(
            networks.create_reservation(
                other, network(), project=theirs, name="r", first="10.77.0.20", last="10.77.0.29"
            ).pk  # fmt: skip
        ),
        "images.image": lambda: int(ready_image(other, theirs, "theirs", image_datastore("img-theirs")).pk),
        "storage.volumesnapshot": snapshot,
    }


def _label(model: Any) -> str:
    return f"{model._meta.app_label}.{model._meta.model_name}"


# --------------------------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------------------------
def test_every_reference_is_gated_and_proven() -> None:
    """Fails when a serializer or form gains an id field that is not resolved through the gate,
    or a gated one that the API proof below does not exercise."""
    problems = []
    for ser, name, ref in serializer_references():
        key = (ser, name)
        if ref is None and key not in PENDING:
            problems.append(f"{ser}.{name} is not gated: use portal.api.Ref(Model, action) (or list it in PENDING)")
            continue
        if ref is not None and ref.directory:
            if key not in DIRECTORY:
                problems.append(f"{ser}.{name} is a directory reference: list it in DIRECTORY after review")
            continue
        if key in DIRECTORY:
            problems.append(f"{ser}.{name} is in DIRECTORY but is not Ref(directory=...)")
        if key in ADMIN_ENDPOINTS:
            continue
        if key not in PROOFS:
            problems.append(f"{ser}.{name}: add a row to PROOFS (method, path, body) naming a foreign object")
        if ref is not None and _label(ref.model) not in FOREIGN_MODELS:
            problems.append(f"{ser}.{name}: add a foreign fixture for {_label(ref.model)} to _foreign()")
    for form, name, gated in form_references():
        if not gated:
            problems.append(f"{form}.{name}: make {form} a portal.forms.GatedForm (choices restricted per user)")
    for form, name in {k for k in DIRECTORY if k[0].endswith("Form")}:
        cls = next(c for c in _subclasses(forms.BaseForm) if c.__name__ == form)
        if name not in getattr(cls, "directory_fields", {}):
            problems.append(f"{form}.{name} is in DIRECTORY but not in its directory_fields")
    discovered = {(s, n) for s, n, _r in serializer_references()}
    stale = sorted(k for k in PROOFS if k not in discovered)
    assert not stale, f"PROOFS rows for fields that no longer exist: {stale}"
    assert not problems, "\n".join(problems)


FOREIGN_MODELS = {
    "tenants.project", "tenants.organization", "auth.user", "compute.vmtemplate", "compute.bootimage",
    "compute.virtualmachine", "compute.host", "network.virtualnetwork", "network.securitygroup", "network.vmnic",
    "network.reservation", "images.image", "storage.volumesnapshot",
}  # fmt: skip


@pytest.fixture
def world(project: Any, admin_user: Any, member: Any, other_tenant: Any, template: Any, make_sim_host: Any,
          ) -> dict[str, Any]:  # fmt: skip
    """The member's own objects (the matrix's world) and a builder of the other tenant's."""
    from tests.factories import ClusterFactory

    UserFactory(username="newbie")
    (vm,) = compute.create_vms(member, project=project, template=template, name="held", hold=True)
    host = make_sim_host("h1", cluster=ClusterFactory())
    ids: dict[str, Any] = {"P": project.pk, "O": project.organization_id, "T": template.pk, "V": vm.pk,
                           "H": host.pk, "C": host.cluster_id}  # fmt: skip
    users = {"member": member, "admin": admin_user, "other": other_tenant}
    matrix_extensions.build_world(ids, users, project, member, admin_user)
    theirs = other_tenant.memberships.get().project
    return {"ids": ids, "foreign": _foreign(other_tenant, theirs, admin_user, ids), "member": member}


def _model_for(ser: str, name: str) -> str:
    for s, n, ref in serializer_references():
        if (s, n) == (ser, name) and ref is not None:
            return _label(ref.model)
    pending = {("ProjectWriteSerializer", "organization"): "tenants.organization",
               ("ApiTokenSerializer", "project"): "tenants.project"}  # fmt: skip
    return pending[(ser, name)]


def _many(ser: str, name: str) -> bool:
    for s, n, _ref in serializer_references():
        if (s, n) == (ser, name):
            import portal.urls  # noqa: F401

            cls = next(c for c in _subclasses(drf.BaseSerializer) if c.__name__ == ser)
            return isinstance(cls().fields[name], drf.ManyRelatedField | drf.ListField)
    return False


@pytest.mark.parametrize("key", sorted(PROOFS), ids=[f"{s}.{n}" for s, n in sorted(PROOFS)])
def test_a_foreign_object_named_in_a_body_is_refused_and_changes_nothing(
    key: tuple[str, str], world: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    ser, name = key
    method, path, body, *fmt = PROOFS[key]
    foreign_id = world["foreign"][_model_for(ser, name)]()
    data = {**_fill(body, world["ids"]), name: [foreign_id] if _many(ser, name) else foreign_id}
    client = client_for(world["member"])
    before = _state()
    with django_capture_on_commit_callbacks() as queued:
        if fmt and fmt[0] == "multipart":
            resp = client.generic(method, _fill(path, world["ids"]), data=_multipart(data),
                                  content_type="multipart/form-data; boundary=BoUnDaRy")  # fmt: skip
        else:
            resp = client.generic(method, _fill(path, world["ids"]), data=json.dumps(data),
                                  content_type="application/json")  # fmt: skip
    assert resp.status_code in (400, 404), (key, resp.status_code, resp.content[:300])
    answer = resp.json()
    assert answer.get("field") == name or name in answer, (key, answer)
    assert _state() == before, f"{ser}.{name}: a refused request changed rows or quota usage"
    assert queued == [], f"{ser}.{name}: a refused request queued a task"


def _multipart(data: dict[str, Any]) -> bytes:
    parts = [f'--BoUnDaRy\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in data.items()]
    return ("".join(parts) + "--BoUnDaRy--\r\n").encode()


@pytest.mark.parametrize("key", sorted(ADMIN_ENDPOINTS), ids=[f"{s}.{n}" for s, n in sorted(ADMIN_ENDPOINTS)])
def test_admin_only_references_are_refused_to_members(key: tuple[str, str], world: dict[str, Any]) -> None:
    """Infrastructure endpoints: a cloud administrator may name every host or cluster (there is
    no foreign one for them); anyone else is refused before the body is read, and nothing changes."""
    method, path = ADMIN_ENDPOINTS[key]
    before = _state()
    resp = client_for(world["member"]).generic(method, _fill(path, world["ids"]), data=json.dumps({key[1]: 1}),
                                               content_type="application/json")  # fmt: skip
    assert resp.status_code in (403, 404), (key, resp.status_code)
    assert _state() == before


def test_form_choices_are_the_users_own(member: Any, project: Any, other_tenant: Any) -> None:
    """Through the page: the template form offers no foreign boot image and refuses one posted by hand."""
    from django.test import Client

    from compute.models import VMTemplate

    theirs = other_tenant.memberships.get().project
    foreign = BootImageFactory(project=theirs, owner=other_tenant, public=False)
    own = BootImageFactory(project=project, owner=member, public=False)
    browser = Client()
    browser.force_login(member)
    page = browser.get("/compute/templates/")
    choices = re.search(r'<select name="boot_image".*?</select>', page.content.decode(), re.S)
    assert page.status_code == 200 and choices is not None
    assert f'value="{own.pk}"' in choices.group(0) and f'value="{foreign.pk}"' not in choices.group(0)
    before = VMTemplate.objects.count()
    resp = browser.post("/compute/templates/", {"name": "sneaky", "vcpu": 1, "memory_mb": 64, "disk_gb": 0,
                                               "boot_image": foreign.pk, "hypervisor": ""})  # fmt: skip
    assert resp.status_code in (200, 400) and "Select a valid choice" in resp.content.decode()
    assert VMTemplate.objects.count() == before


def test_discovery_sees_what_it_should() -> None:
    """The walk itself is checked, so the completeness test cannot pass by finding nothing."""
    found = {(s, n) for s, n, _r in serializer_references()}
    assert {("TemplateNicSerializer", "security_groups"), ("VMCreateSerializer", "template"),
            ("NicGroupsSerializer", "security_groups"), ("ApiTokenSerializer", "project")} <= found  # fmt: skip
    assert ("TemplateForm", "boot_image", True) in form_references()
