"""Browser pages for datastores (cloud administrators; auditors read): list with capacity bars,
create form, detail with actions. Every change goes through ``storage.services.datastores``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from compute.models import Cluster
from portal.api import client_ip
from portal.errors import ServiceError
from portal.forms import GatedForm
from tenants.querysets import is_cloud_admin, is_cloud_auditor

from .models import CloneMode, Datastore, DatastoreDriver, DatastoreKind, DatastoreState
from .services import datastores as svc

STATE_CSS = {DatastoreState.READY: "ok", DatastoreState.DISABLED: "warn", DatastoreState.ERROR: "bad"}
ACTION_LABELS = {"enable": "Enable", "disable": "Disable", "refresh": "Refresh"}
# form field → the service's source key
SOURCE_FIELDS = {
    "vg": "vg", "devices": "devices", "nfs_host": "host", "nfs_dir": "dir", "nfs_protocol": "protocol",
    "ceph_pool": "pool", "ceph_monitors": "monitors", "ceph_user": "auth_username", "ceph_secret": "secret_uuid",
}  # fmt: skip
SOURCE_DRIVER = {"vg": "logical", "devices": "logical", "nfs_host": "netfs", "nfs_dir": "netfs", "nfs_protocol": "netfs",
                 "ceph_pool": "rbd", "ceph_monitors": "rbd", "ceph_user": "rbd", "ceph_secret": "rbd"}  # fmt: skip


class DatastoreForm(GatedForm, forms.Form):
    """Create a datastore; the driver's own settings are the fields of its group."""

    name = forms.CharField(max_length=63)
    kind = forms.ChoiceField(choices=DatastoreKind.choices)
    driver = forms.ChoiceField(choices=DatastoreDriver.choices, initial=DatastoreDriver.DIR)
    path = forms.CharField(
        max_length=1024, required=False, help_text="pool target; empty: NEPHELE_STATE_DIR/datastores/<name>"
    )
    clone_mode = forms.ChoiceField(choices=CloneMode.choices, initial=CloneMode.COW, label="VM disks")
    clusters = forms.ModelMultipleChoiceField(queryset=Cluster.objects.all(), required=False,
                                              help_text="none selected: every cluster reaches it")  # fmt: skip
    vg = forms.CharField(required=False, label="LVM volume group")
    devices = forms.CharField(required=False, label="LVM devices", help_text="comma separated, to build the group")
    nfs_host = forms.CharField(required=False, label="NFS server")
    nfs_dir = forms.CharField(required=False, label="NFS export", help_text="e.g. /export/nephele")
    nfs_protocol = forms.CharField(required=False, label="NFS version")
    ceph_pool = forms.CharField(required=False, label="Ceph pool")
    ceph_monitors = forms.CharField(required=False, label="Ceph monitors", help_text="host[:port], comma separated")
    ceph_user = forms.CharField(required=False, label="cephx user")
    ceph_secret = forms.CharField(required=False, label="libvirt secret UUID")

    GROUPS = (("logical", "LVM volume group"), ("netfs", "NFS export"), ("rbd", "Ceph RBD pool"))

    def general_fields(self) -> list[Any]:
        """The fields every driver has."""
        return [self[f] for f in self.fields if f not in SOURCE_FIELDS]

    def driver_groups(self) -> list[tuple[str, str, list[Any]]]:
        """(driver, title, its settings' fields), shown in a fieldset per driver."""
        return [(d, title, [self[f] for f in SOURCE_FIELDS if SOURCE_DRIVER[f] == d]) for d, title in self.GROUPS]

    def source(self) -> dict[str, Any]:
        """The ``source`` settings of the chosen driver (other groups' fields are ignored)."""
        d = self.cleaned_data
        return {SOURCE_FIELDS[f]: d[f] for f in SOURCE_FIELDS if SOURCE_DRIVER[f] == d["driver"] and d.get(f)}

    def add_service_error(self, exc: ServiceError) -> None:
        field = exc.field or ""
        if field.startswith("source."):
            key = field.split(".", 1)[1]
            field = next(
                (
                    f
                    for f, k in SOURCE_FIELDS.items()
                    if k == key and SOURCE_DRIVER[f] == self.cleaned_data.get("driver")
                ),
                "",
            )
        self.add_error(field if field in self.fields else None, exc.message)


class DatastoreEditForm(GatedForm, forms.Form):
    """What may change at any time (location changes go through the API while empty)."""

    name = forms.CharField(max_length=63)
    clone_mode = forms.ChoiceField(choices=CloneMode.choices, label="VM disks")
    clusters = forms.ModelMultipleChoiceField(queryset=Cluster.objects.all(), required=False,
                                              help_text="none selected: every cluster reaches it")  # fmt: skip
    path = forms.CharField(max_length=1024, required=False, help_text="only while the datastore is empty")


def _reader_or_404(request: HttpRequest) -> None:
    if not (is_cloud_admin(request.user) or is_cloud_auditor(request.user)):
        raise Http404("not found")


def _admin_or_404(request: HttpRequest) -> None:
    if not is_cloud_admin(request.user):
        raise Http404("not found")


def _datastores(user: Any) -> QuerySet[Datastore]:
    return Datastore.objects.restrict(user, "view").prefetch_related("clusters")


def decorate(ds: Datastore) -> Datastore:
    """What the partials show beside the row: state colour and the actions its state allows."""
    ds.state_css = STATE_CSS.get(ds.state, "")  # type: ignore[attr-defined]
    ds.actions = [(a, ACTION_LABELS[a]) for a, states in svc.ACTIONS.items() if ds.state in states]  # type: ignore[attr-defined]
    # the list row offers one button: the next sensible step for the state
    quick = {DatastoreState.READY: "disable", DatastoreState.DISABLED: "enable", DatastoreState.ERROR: "refresh"}
    ds.quick_actions = [(a, label) for a, label in ds.actions if a == quick.get(ds.state)]  # type: ignore[attr-defined]
    ds.free_percent = 100 - ds.used_percent if ds.total_bytes else 0  # type: ignore[attr-defined]
    return ds


@login_required
def datastore_list(request: HttpRequest, form: DatastoreForm | None = None) -> HttpResponse:
    _reader_or_404(request)
    stores = [decorate(ds) for ds in _datastores(request.user)]
    ctx = {
        "datastores": stores,
        "form": form or DatastoreForm(user=request.user),
        "form_open": form is not None,
        "can_manage": is_cloud_admin(request.user),
        "totals": {
            kind: (
                sum(d.total_bytes for d in stores if d.kind == kind),
                sum(d.free_bytes for d in stores if d.kind == kind),
            )
            for kind in DatastoreKind.values
        },
    }
    return render(request, "storage/datastore_list.html", ctx, status=400 if form is not None else 200)


@login_required
@require_POST
def datastore_create(request: HttpRequest) -> HttpResponse:
    _admin_or_404(request)
    form = DatastoreForm(request.POST, user=request.user)
    if form.is_valid():
        d = form.cleaned_data
        try:
            ds = svc.create_datastore(
                request.user, name=d["name"], kind=d["kind"], driver=d["driver"], path=d["path"] or None,
                source=form.source(), clone_mode=d["clone_mode"], clusters=list(d["clusters"]), ip=client_ip(request),
            )  # fmt: skip
        except ServiceError as exc:
            form.add_service_error(exc)
        else:
            messages.success(request, f"Datastore {ds.name} created; its pool is being prepared and measured.")
            return redirect("ui-datastore-detail", pk=ds.pk)
    return datastore_list(request, form=form)


@login_required
def datastore_detail(request: HttpRequest, pk: int, form: DatastoreEditForm | None = None) -> HttpResponse:
    _reader_or_404(request)
    ds = _datastores(request.user).filter(pk=pk).first()
    if ds is None:
        raise Http404("datastore not found")
    initial = {"name": ds.name, "clone_mode": ds.clone_mode, "clusters": list(ds.clusters.all()), "path": ds.path}
    ctx = {
        "form": form or DatastoreEditForm(initial=initial, user=request.user),
        "form_open": form is not None,
        "ds": decorate(ds),
        "contents": sorted(svc.contents(ds).items()),
        "can_manage": is_cloud_admin(request.user),
        "pool_name": svc.libvirt_pool_name(ds),
        "images": list(ds.images.order_by("name")[:50]),
    }
    return render(request, "storage/datastore_detail.html", ctx, status=400 if form is not None else 200)


@login_required
@require_POST
def datastore_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename, change clone mode or reach (and the path while empty)."""
    _admin_or_404(request)
    ds = _datastores(request.user).filter(pk=pk).first()
    if ds is None:
        raise Http404("datastore not found")
    form = DatastoreEditForm(request.POST, user=request.user)
    if form.is_valid():
        d = form.cleaned_data
        changes: dict[str, Any] = {"name": d["name"], "clone_mode": d["clone_mode"], "clusters": list(d["clusters"])}
        if d["path"] and d["path"] != ds.path:
            changes["path"] = d["path"]
        try:
            svc.update_datastore(request.user, pk, ip=client_ip(request), **changes)
        except ServiceError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            messages.success(request, f"Datastore {d['name']} saved.")
            return redirect("ui-datastore-detail", pk=pk)
    return datastore_detail(request, pk, form=form)


@login_required
@require_POST
def datastore_action(request: HttpRequest, pk: int) -> HttpResponse:
    """enable / disable / refresh / delete; a refusal comes back as a message on the page."""
    _admin_or_404(request)
    if not _datastores(request.user).filter(pk=pk).exists():
        raise Http404("datastore not found")
    action = request.POST.get("action", "")
    try:
        if action == "delete":
            svc.delete_datastore(request.user, pk, ip=client_ip(request))
            messages.success(request, "Datastore deleted; the files on disk were kept.")
            return redirect("ui-datastore-list")
        ds = svc.set_datastore_state(request.user, pk, action, ip=client_ip(request))
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Datastore {ds.name}: {action} done.")
    return redirect("ui-datastore-detail", pk=pk)
