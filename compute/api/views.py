"""REST API for compute: clusters, hosts, boot images, templates, VMs and their actions.

Every queryset starts from the access gate; every change goes through a service.
"""

from __future__ import annotations

from typing import Any

from django.db.models import F, Q, QuerySet
from django.http import HttpResponse
from django_filters import OrderingFilter
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from monitoring.models import AuditRecord
from portal.api import IsCloudAdmin, ShareSerializer, SharesSerializer, client_ip
from portal.errors import InvalidInput
from portal.filters import CharFilter, FilterSet, PresentCharFilter
from tenants import sharing

from .. import services
from ..models import BootImage, Cluster, Host, VirtualMachine, VMTemplate
from ..services import bootimages, clusters, templates
from ..services import console as console_service
from ..states import VMState
from . import serializers as s

TEMPLATE_REFERENCES = ("project", "boot_image", "cluster")


METRICS_PARAMETERS = [s.MetricQuerySerializer]


class ClusterViewSet(viewsets.ModelViewSet):
    """Clusters (cloud administrators)."""

    serializer_class = s.ClusterSerializer
    permission_classes = [IsCloudAdmin]

    def get_queryset(self) -> QuerySet[Cluster]:
        return Cluster.objects.restrict(self.request.user, "view")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = clusters.create_cluster(
            self.request.user, ip=client_ip(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = clusters.update_cluster(
            self.request.user, serializer.instance.pk, ip=client_ip(self.request), **serializer.validated_data
        )

    def perform_destroy(self, instance: Cluster) -> None:
        clusters.delete_cluster(self.request.user, instance.pk, ip=client_ip(self.request))


class HostViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Hypervisor hosts (cloud administrators)."""

    serializer_class = s.HostSerializer
    permission_classes = [IsCloudAdmin]
    filterset_fields = ["state", "cluster", "hypervisor"]

    def get_queryset(self) -> QuerySet[Host]:
        return Host.objects.restrict(self.request.user, "view").select_related("cluster")

    def create(self, request: Request) -> Response:
        ser = s.HostSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        host = services.register_host(
            request.user,
            name=d["name"],
            uri=d["uri"],
            driver=d.get("driver", "libvirt"),
            hypervisor=d.get("hypervisor", "qemu"),
            # the serializer's Ref validates an id; the service takes the cluster itself
            cluster=Cluster.objects.filter(pk=d["cluster"]).first() if d.get("cluster") is not None else None,
            labels=d.get("labels") or {},
            priority=d.get("priority", 0),
            agent=d.get("agent", "local"),
            ip=client_ip(request),
        )
        return Response(s.HostSerializer(host).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: Host) -> None:
        services.delete_host(self.request.user, instance.pk, ip=client_ip(self.request))

    @extend_schema(parameters=METRICS_PARAMETERS, responses={200: s.MetricSeriesSerializer})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def metrics(self, request: Request, pk: str | None = None) -> Response:
        """Monitoring series of the host: host_cpu_load, host_free_memory_mb, host_alloc_vcpu …"""
        return _metrics_response(request, 1, self.get_object().pk)

    @extend_schema(request=s.HostActionSerializer, responses={200: s.HostSerializer})
    @action(detail=True, methods=["post"], url_path="action")
    def host_action(self, request: Request, pk: str | None = None) -> Response:
        host = self.get_object()
        ser = s.HostActionSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        host = services.set_host_state(request.user, host.pk, ser.validated_data["action"], ip=client_ip(request))
        return Response(s.HostSerializer(host).data)

    @extend_schema(
        request=s.HostBMCSerializer,
        responses={200: s.HostSerializer, 409: OpenApiResponse(description="a power action is in flight")},
    )
    @action(detail=True, methods=["put"], url_path="bmc")
    def bmc(self, request: Request, pk: str | None = None) -> Response:
        """Set the host's power driver (none, redfish, ipmi) and BMC; the password is write-only."""
        host = self.get_object()
        ser = s.HostBMCSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        host = services.power.configure_bmc(
            request.user, host.pk, power_driver=d["power_driver"], bmc_address=d["bmc_address"],
            bmc_username=d["bmc_username"], bmc_password=d.get("bmc_password"), bmc_system=d["bmc_system"],
            bmc_verify_tls=d["bmc_verify_tls"], ip=client_ip(request),
        )  # fmt: skip
        return Response(s.HostSerializer(host).data)

    @extend_schema(
        request=s.HostPowerSerializer,
        responses={
            202: s.HostSerializer,
            409: OpenApiResponse(description="no BMC, a power action in flight, or the host serves or holds VMs"),
        },
    )
    @action(detail=True, methods=["post"], url_path="power")
    def power(self, request: Request, pk: str | None = None) -> Response:
        """Power on / off / reset the host through its BMC, or ask it for the power state. The BMC is
        called after the answer; ``power_operation`` is set until it answered, then ``power_state``
        (or ``power_message`` with its error) shows the outcome."""
        host = self.get_object()
        ser = s.HostPowerSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        host = services.power.request_power(request.user, host.pk, ser.validated_data["action"], ip=client_ip(request))
        return Response(s.HostSerializer(host).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        methods=["GET"], request=None, responses={200: s.MaintenanceReportSerializer},
        description="The host and the VMs still on it.",
    )  # fmt: skip
    @extend_schema(
        methods=["POST"],
        request=s.HostMaintenanceSerializer,
        responses={200: s.MaintenanceReportSerializer, 409: OpenApiResponse(description="not in maintenance")},
    )
    @action(detail=True, methods=["get", "post"], url_path="maintenance")
    def maintenance(self, request: Request, pk: str | None = None) -> Response:
        """maintenance (no new placements), drain (and migrate its VMs away), activate (back to service)."""
        host = self.get_object()
        report: dict[str, Any] = {"migrating": [], "live": [], "stays": {}}
        if request.method == "POST":
            ser = s.HostMaintenanceSerializer(data=request.data)
            ser.is_valid(raise_exception=True)
            act, reason, ip = ser.validated_data["action"], ser.validated_data["reason"], client_ip(request)
            if act == "maintenance":
                host = services.power.enter_maintenance(request.user, host.pk, reason=reason, ip=ip)
            elif act == "activate":
                host = services.power.activate_host(request.user, host.pk, ip=ip)
            else:
                drained = services.power.drain_host(request.user, host.pk, ip=ip)
                host = drained.host
                report = {"migrating": drained.migrating, "live": drained.live,
                          "stays": {str(k): v for k, v in drained.stays.items()}}  # fmt: skip
        vms = [{"id": vm.pk, "name": vm.name, "state": vm.state, "operation": vm.operation}
               for vm in services.power.resident_vms(host.pk)]  # fmt: skip
        return Response({"host": s.HostSerializer(host).data, "vms": vms, **report})


class BootImageViewSet(viewsets.ModelViewSet):
    """Boot sources registered by path on the hosts (administrators register; everyone lists)."""

    serializer_class = s.BootImageSerializer

    def get_queryset(self) -> QuerySet[BootImage]:
        return BootImage.objects.restrict(self.request.user, "view").order_by("name")

    def get_permissions(self) -> list[Any]:
        if self.action in ("list", "retrieve"):
            return [permissions.IsAuthenticated()]
        return [IsCloudAdmin()]

    def perform_create(self, serializer: Any) -> None:
        d = s.ids_to_names(serializer.validated_data, "project")
        serializer.instance = bootimages.create_boot_image(self.request.user, ip=client_ip(self.request), **d)

    def perform_update(self, serializer: Any) -> None:
        d = s.ids_to_names(serializer.validated_data, "project")
        serializer.instance = bootimages.update_boot_image(
            self.request.user, serializer.instance.pk, ip=client_ip(self.request), **d
        )

    def perform_destroy(self, instance: BootImage) -> None:
        bootimages.delete_boot_image(self.request.user, instance.pk, ip=client_ip(self.request))


class VMTemplateViewSet(viewsets.ModelViewSet):
    """VM templates (instance types) of the user's projects, plus public ones."""

    serializer_class = s.VMTemplateSerializer
    filterset_fields = ["project", "public"]

    def get_queryset(self) -> QuerySet[VMTemplate]:
        action_name = "view" if self.action in ("list", "retrieve", "shares") else "manage"
        return VMTemplate.objects.restrict(self.request.user, action_name).select_related("boot_image").order_by("name")

    # The serializer checks shapes; the service resolves project, boot image and cluster
    # through the access gate and validates the rest (one place for the API and the page).
    def perform_create(self, serializer: Any) -> None:
        d = s.ids_to_names(serializer.validated_data, *TEMPLATE_REFERENCES)
        serializer.instance = templates.create_template(self.request.user, ip=client_ip(self.request), **d)

    def perform_update(self, serializer: Any) -> None:
        d = s.ids_to_names(serializer.validated_data, *TEMPLATE_REFERENCES)
        serializer.instance = templates.update_template(
            self.request.user, serializer.instance.pk, ip=client_ip(self.request), **d
        )

    def perform_destroy(self, instance: VMTemplate) -> None:
        templates.delete_template(self.request.user, instance.pk, ip=client_ip(self.request))

    @extend_schema(request=ShareSerializer, responses={200: SharesSerializer})
    @action(detail=True, methods=["get", "post", "delete"], url_path="shares")
    def shares(self, request: Request, pk: str | None = None) -> Response:
        """GET: who the template is shared with. POST / DELETE {project | user}: share / unshare."""
        template = self.get_object()
        if request.method != "GET":
            ser = ShareSerializer(data=request.data, context={"request": request})
            ser.is_valid(raise_exception=True)
            fn = sharing.share if request.method == "POST" else sharing.unshare
            fn(request.user, VMTemplate, template.pk, project_id=ser.validated_data.get("project"),
               username=ser.validated_data.get("user"))  # fmt: skip
        return Response(sharing.visible_shares(request.user, template))


_STATE = "|".join(VMState.values)
#: one state or several, comma-separated, exactly as the filter reads them
STATES_PATTERN = f"^({_STATE})(,({_STATE}))*$"


class VMFilter(FilterSet):
    state = PresentCharFilter(method="filter_state", help_text="one or more states, comma-separated (RUNNING,POWEROFF)")
    name = CharFilter(lookup_expr="icontains")
    search = CharFilter(method="filter_search", help_text="the name contains it, or it is the VM's id")
    # limit/offset pages follow it; cursor pages always go by id
    ordering = OrderingFilter(fields=["id", "name", "state", "created_at", "vcpu", "memory_mb"])

    class Meta:
        model = VirtualMachine
        fields = ["project", "host", "state", "name"]

    @extend_schema_field({"type": "string", "pattern": STATES_PATTERN})
    def filter_state(self, qs: QuerySet[VirtualMachine], name: str, value: str) -> QuerySet[VirtualMachine]:
        states = value.split(",")
        unknown = [v for v in states if v not in VMState.values]
        if unknown:
            raise InvalidInput(f"unknown state {unknown[0]!r}; known: {', '.join(VMState.values)}", field="state")
        return qs.filter(state__in=states)

    def filter_search(self, qs: QuerySet[VirtualMachine], name: str, value: str) -> QuerySet[VirtualMachine]:
        match = Q(name__icontains=value)
        if value.isdigit() and int(value) < 2**63:
            match |= Q(pk=int(value))
        return qs.filter(match)


#: the columns a VM list reads (``VMSerializer``'s fields, the host's name, the owner's name)
LIST_COLUMNS = (
    "id", "name", "project_id", "owner_id", "template_id", "vcpu", "memory_mb", "disk_gb", "state",
    "operation", "hv_state", "host_id", "schedule_message", "last_error", "required_labels", "hypervisor",
    "cluster_id", "created_at", "state_changed_at", "version",
)  # fmt: skip


class VMViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Virtual machines. DONE VMs are listed only when asked for (``?state=DONE``)."""

    serializer_class = s.VMSerializer
    filterset_class = VMFilter

    def get_serializer_class(self) -> Any:
        return s.VMDetailSerializer if self.action == "retrieve" else s.VMSerializer

    def get_queryset(self) -> QuerySet[VirtualMachine]:
        qs = VirtualMachine.objects.restrict(self.request.user, "view").select_related("host", "owner")
        if self.action == "list":
            # what a list row shows (no seed, no operation arguments), the host's and the owner's
            # names as plain columns: one model instance per row, not three
            qs = (
                VirtualMachine.objects.restrict(self.request.user, "view")
                .only(*LIST_COLUMNS)
                .annotate(host_name=F("host__name"), owner_name=F("owner__username"))
            )
            if "state" not in self.request.query_params:
                qs = qs.exclude(state="DONE")
        return qs

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().retrieve(request, *args, **kwargs)
        response["ETag"] = f'"{response.data["version"]}"'  # for If-Match on the VM's actions
        return response

    @extend_schema(request=s.VMCreateSerializer, responses={202: s.VMSerializer(many=True)})
    def create(self, request: Request) -> Response:
        ser = s.VMCreateSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        vms = services.create_vms(  # resolves project and template through the gate, at use
            request.user,
            project=d["project"],
            template=d.get("template"),
            image=d.get("image"),
            disk_gb=d.get("disk_gb"),
            networks=d.get("networks", []),
            security_groups=d.get("security_groups", []),
            name=d["name"],
            count=d["count"],
            vcpu=d.get("vcpu"),
            memory_mb=d.get("memory_mb"),
            hold=d["hold"],
            ip=client_ip(request),
            user_data=d["user_data"],
            client_token=d["client_token"] or request.headers.get("Idempotency-Key", "").strip(),
        )
        data = s.VMSerializer(vms, many=True, context={"request": request}).data
        return Response(data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        request=s.VMActionSerializer,
        responses={202: s.VMSerializer, 409: OpenApiResponse(description="not allowed in the current state")},
    )
    @action(detail=True, methods=["post"], url_path="action")
    def vm_action(self, request: Request, pk: str | None = None) -> Response:
        vm = self.get_object()
        ser = s.VMActionSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        req = services.ActionRequest(
            action=d["action"],
            hard=d["hard"],
            live=d["live"],
            host_id=d.get("host"),
            recover=d.get("recover") or "",
            vcpu=d.get("vcpu"),
            memory_mb=d.get("memory_mb"),
            version=d.get("version", _if_match(request)),
        )
        vm = services.perform_action(request.user, vm.pk, req, ip=client_ip(request))
        vm.refresh_from_db()
        return Response(s.VMSerializer(vm, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(parameters=METRICS_PARAMETERS, responses={200: s.MetricSeriesSerializer})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def metrics(self, request: Request, pk: str | None = None) -> Response:
        """Monitoring series of the VM: cpu_pct, memory_mb, net_rx_bps, net_tx_bps, disk_* …"""
        return _metrics_response(request, 2, self.get_object().pk)

    @extend_schema(responses={200: s.VMHistorySerializer})
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Placements (host stays with times) and state changes of the VM."""
        vm = self.get_object()
        return Response(
            {
                "placements": s.PlacementSerializer(vm.placements.select_related("host"), many=True).data,
                "state_changes": s.StateChangeSerializer(vm.state_changes.all(), many=True).data,
            }
        )

    @extend_schema(
        request=s.ConsoleRequestSerializer,
        responses={
            201: s.ConsoleTicketSerializer,
            403: OpenApiResponse(description="viewers cannot open consoles"),
            409: OpenApiResponse(description="the VM is not RUNNING, or has no console of that kind"),
        },
    )
    @action(detail=True, methods=["post"], url_path="console", pagination_class=None, filter_backends=[])
    def console(self, request: Request, pk: str | None = None) -> Response:
        """A one-time token for the VM's serial or graphical console: open the websocket at
        ``url`` (same host) within ``expires_at``; it works once, for you and this VM only."""
        ser = s.ConsoleRequestSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        ticket = console_service.issue_token(request.user, pk, ser.validated_data["kind"], ip=client_ip(request))
        data = {"kind": ticket.kind, "url": ticket.path, "token": ticket.token, "expires_at": ticket.expires_at}
        return Response(s.ConsoleTicketSerializer(data).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[s.ConsoleLogQuerySerializer],
        responses={(200, "text/plain"): OpenApiTypes.STR, 404: OpenApiResponse(description="no log yet")},
    )
    @action(detail=True, methods=["get"], url_path="console-log", pagination_class=None, filter_backends=[])
    def console_log(self, request: Request, pk: str | None = None) -> HttpResponse:
        """What the guest printed on its serial console (the log's end), as a text download."""
        query = s.ConsoleLogQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        vm, data = console_service.read_console_log(request.user, pk, max_bytes=query.validated_data.get("bytes"))
        return console_log_response(vm, data)


def console_log_response(vm: VirtualMachine, data: bytes) -> HttpResponse:
    """A console log as a text/plain download (shared by the page's download link)."""
    response = HttpResponse(data, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="vm-{vm.pk}-console.log"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _if_match(request: Request) -> int | None:
    """The version an ``If-Match: "<version>"`` header names (weak or strong), or None."""
    header = request.headers.get("If-Match", "").strip()
    if not header or header == "*":
        return None
    value = header.removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 10:
        raise InvalidInput('If-Match must be the VM\'s version in quotes, e.g. "12"', field="version")
    return int(value)


def _metrics_response(request: Request, kind: int, object_id: int) -> Response:
    """?metric=cpu_pct&hours=24 (or &since=ISO): the series at the finest resolution kept."""
    from datetime import timedelta

    from django.utils import timezone

    from monitoring import store
    from monitoring.models import Metric

    query = s.MetricQuerySerializer(data=request.query_params.dict())  # "" is a value, not absent
    query.is_valid(raise_exception=True)
    metric, hours = query.validated_data["metric"], query.validated_data["hours"]
    since = query.validated_data.get("since") or timezone.now() - timedelta(hours=hours)
    names = {label: value for value, label in Metric.choices}
    resolution, points = store.series(kind, object_id, names[metric], since)
    return Response({"metric": metric, "resolution_s": resolution, "points": [[t.timestamp(), v] for t, v in points]})


class AuditViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail of the user's projects (all of it for cloud administrators)."""

    serializer_class = s.AuditSerializer
    filterset_fields = ["object_type", "object_id", "action", "project"]

    def get_queryset(self) -> QuerySet[AuditRecord]:
        return AuditRecord.objects.restrict(self.request.user, "view")
