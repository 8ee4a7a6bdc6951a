"""REST API of the network manager. Every queryset starts from the access gate; every change
goes through a service (the services check access again and say which field is at fault)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api import IsCloudAdmin, client_ip
from portal.errors import InvalidInput, NotFound
from tenants.models import Project

from .. import models as m
from ..services import hosts, networks, nics, publicips, secgroups
from ..topology import topology
from . import serializers as s

CRD = (mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin)


class _Base(*CRD, viewsets.GenericViewSet):  # type: ignore[misc]
    """List / retrieve through the gate; create and destroy through services."""

    model: Any = None

    def get_queryset(self) -> QuerySet[Any]:
        return self.model.objects.restrict(self.request.user, "view")

    def _ok(self, obj: Any, code: int = status.HTTP_201_CREATED) -> Response:
        return Response(self.get_serializer(obj).data, status=code)

    def _valid(self, request: Request, cls: Any = None) -> dict[str, Any]:
        ser = (cls or self.get_serializer_class())(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        return s.data(ser)


class VniPoolViewSet(_Base):
    """VXLAN VNI and VLAN id pools (cloud administrators)."""

    model = m.VniPool
    serializer_class = s.VniPoolSerializer
    permission_classes = [IsCloudAdmin]

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        return self._ok(
            networks.create_vni_pool(request.user, name=d["name"], first=d["first"], last=d["last"], kind=d["kind"])
        )

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        networks.delete_vni_pool(request.user, self.get_object().pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NetworkViewSet(_Base, mixins.UpdateModelMixin):
    """Virtual networks of the user's projects, plus shared and public ones."""

    model = m.VirtualNetwork
    serializer_class = s.NetworkSerializer
    filterset_fields = ["project", "visibility"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("owner").prefetch_related("ranges")

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        project = Project.objects.restrict(request.user, "manage").filter(pk=d.pop("project")).first()
        if project is None:
            raise NotFound("project not found", field="project")
        net = networks.create_network(request.user, project=project, ip=client_ip(request), **d)
        return self._ok(net)

    @extend_schema(request=s.NetworkUpdateSerializer, responses={200: s.NetworkSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        d = self._valid(request, s.NetworkUpdateSerializer)
        net = networks.update_network(request.user, self.get_object().pk, ip=client_ip(request), **d)
        return self._ok(net, status.HTTP_200_OK)

    def update(self, request: Request, pk: str | None = None, **kw: Any) -> Response:
        return self.partial_update(request, pk)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        networks.delete_network(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[OpenApiParameter("project", int, description="only this project (default: every visible one)")],
        responses={200: s.TopologySerializer},
    )
    @action(detail=False, methods=["get"], pagination_class=None, filter_backends=[])
    def topology(self, request: Request) -> Response:
        """Networks, VMs (with their NICs) and public IPs of ``?project=`` (default: all visible)."""
        pid = request.query_params.get("project")
        projects = Project.objects.restrict(request.user, "view")
        if pid is not None:
            digits = pid.removeprefix("-")
            if not (digits.isascii() and digits.isdigit()):
                raise InvalidInput("project must be a project id (a whole number)", field="project")
            projects = projects.filter(pk=int(pid)) if len(digits) <= 18 else projects.none()
            if not projects.exists():
                raise NotFound("project not found", field="project")
        return Response(topology(request.user, projects))


class AddressRangeViewSet(_Base):
    """Address ranges of networks (IPv4, inclusive)."""

    model = m.AddressRange
    serializer_class = s.AddressRangeSerializer
    filterset_fields = ["network"]

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        rng = networks.add_range(request.user, d["network"], first=d["first"], last=d["last"], ip=client_ip(request))
        return self._ok(rng)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        networks.delete_range(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LeaseViewSet(_Base):
    """Leases of the project's networks. POST holds an address; DELETE releases a hold."""

    model = m.Lease
    serializer_class = s.LeaseSerializer
    filterset_fields = ["network", "kind"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("nic")

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        return self._ok(networks.hold_address(request.user, d["network"], address=d["address"], ip=client_ip(request)))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        networks.release_hold(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReservationViewSet(_Base):
    """A project's reserved sub-ranges of (possibly shared) networks."""

    model = m.Reservation
    serializer_class = s.ReservationSerializer
    filterset_fields = ["network", "project"]

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        project = Project.objects.restrict(request.user, "manage").filter(pk=d["project"]).first()
        if project is None:
            raise NotFound("project not found", field="project")
        res = networks.create_reservation(request.user, d["network"], project=project, name=d["name"],
                                          first=d["first"], last=d["last"], ip=client_ip(request))  # fmt: skip
        return self._ok(res)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        networks.delete_reservation(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecurityGroupViewSet(_Base):
    """Security groups and their rules."""

    model = m.SecurityGroup
    serializer_class = s.SecurityGroupSerializer
    filterset_fields = ["project"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().prefetch_related("rules")

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        project = Project.objects.restrict(request.user, "manage").filter(pk=d["project"]).first()
        if project is None:
            raise NotFound("project not found", field="project")
        group = secgroups.create_group(request.user, project=project, name=d["name"],
                                       description=d.get("description", ""), ip=client_ip(request))  # fmt: skip
        return self._ok(group)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        secgroups.delete_group(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RuleViewSet(_Base):
    """Rules of security groups (allow rules; replies always pass)."""

    model = m.SecurityGroupRule
    serializer_class = s.RuleSerializer
    filterset_fields = ["group"]

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        group = d.pop("group")
        rule = secgroups.add_rule(request.user, group, ip=client_ip(request), **d)
        return self._ok(rule)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        secgroups.delete_rule(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PublicIPPoolViewSet(_Base):
    """Public IP pools: administrators define them; everyone may list them to allocate from."""

    model = m.PublicIPPool
    serializer_class = s.PublicIPPoolSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return m.PublicIPPool.objects.all()

    def get_permissions(self) -> list[Any]:
        if self.action in ("list", "retrieve"):
            return [permissions.IsAuthenticated()]
        return [IsCloudAdmin()]

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        return self._ok(publicips.create_pool(request.user, **d))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        publicips.delete_pool(request.user, self.get_object().pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PublicIPViewSet(_Base):
    """A project's public IPs: POST allocates, DELETE releases, actions (dis)associate."""

    model = m.PublicIP
    serializer_class = s.PublicIPSerializer
    filterset_fields = ["project", "pool"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("nic__lease")

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        project = Project.objects.restrict(request.user, "manage").filter(pk=d["project"]).first()
        if project is None:
            raise NotFound("project not found", field="project")
        return self._ok(publicips.allocate(request.user, project=project, pool=d.get("pool"), ip=client_ip(request)))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        publicips.release(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.AssociateSerializer, responses={200: s.PublicIPSerializer})
    @action(detail=True, methods=["post"])
    def associate(self, request: Request, pk: str | None = None) -> Response:
        """NAT this address 1:1 to a NIC's IPv4."""
        d = self._valid(request, s.AssociateSerializer)
        pip = publicips.associate(request.user, self.get_object().pk, nic_id=d["nic"], ip=client_ip(request))
        return self._ok(pip, status.HTTP_200_OK)

    @extend_schema(request=None, responses={200: s.PublicIPSerializer})
    @action(detail=True, methods=["post"])
    def disassociate(self, request: Request, pk: str | None = None) -> Response:
        pip = publicips.disassociate(request.user, self.get_object().pk, ip=client_ip(request))
        return self._ok(pip, status.HTTP_200_OK)


class NicViewSet(_Base):
    """VM NICs: POST attaches one (cold, or hot on a running VM), DELETE detaches it."""

    model = m.VMNic
    serializer_class = s.NicSerializer
    filterset_fields = ["vm", "network"]

    def get_queryset(self) -> QuerySet[Any]:
        return super().get_queryset().select_related("lease").prefetch_related("security_groups")

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        nic = nics.attach_nic(
            request.user, d["vm"], network=d["network"], fixed_ip=d.get("fixed_ip"), reservation=d.get("reservation"),
            security_groups=d.get("groups"), average_kbps=d.get("average_kbps", 0), peak_kbps=d.get("peak_kbps", 0),
            burst_kb=d.get("burst_kb", 0), ip=client_ip(request),
        )  # fmt: skip
        return self._ok(nic)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        nics.detach_nic(request.user, self.get_object().pk, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.NicGroupsSerializer, responses={200: s.NicSerializer})
    @action(detail=True, methods=["post"], url_path="security-groups")
    def security_groups(self, request: Request, pk: str | None = None) -> Response:
        """Put the NIC in exactly these security groups."""
        d = self._valid(request, s.NicGroupsSerializer)
        nic = nics.set_nic_groups(request.user, self.get_object().pk, security_groups=d["security_groups"],
                                  ip=client_ip(request))  # fmt: skip
        return self._ok(m.VMNic.objects.get(pk=nic.pk), status.HTTP_200_OK)


class TemplateNicViewSet(_Base):
    """NICs that VM templates give to their VMs."""

    model = m.TemplateNic
    serializer_class = s.TemplateNicSerializer
    filterset_fields = ["template"]

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        nic = nics.add_template_nic(
            request.user, d["template"], network=d["network"], fixed_ip=d.get("fixed_ip"),
            security_groups=d.get("security_groups", []), average_kbps=d.get("average_kbps", 0),
            peak_kbps=d.get("peak_kbps", 0), burst_kb=d.get("burst_kb", 0),
        )  # fmt: skip
        return self._ok(nic)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        nics.remove_template_nic(request.user, self.get_object().pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class HostNetworkViewSet(_Base):
    """How the network driver reaches each host (cloud administrators)."""

    model = m.HostNetwork
    serializer_class = s.HostNetworkSerializer
    permission_classes = [IsCloudAdmin]

    def create(self, request: Request) -> Response:
        d = self._valid(request)
        return self._ok(hosts.set_host_network(request.user, **d))

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        hosts.delete_host_network(request.user, self.get_object().pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
