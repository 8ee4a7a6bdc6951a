"""REST API routes of the network manager (merged into /api/v1/ by portal/urls.py)."""

from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("vni-pools", views.VniPoolViewSet, basename="vnipool")
router.register("networks", views.NetworkViewSet, basename="network")
router.register("address-ranges", views.AddressRangeViewSet, basename="addressrange")
router.register("leases", views.LeaseViewSet, basename="lease")
router.register("reservations", views.ReservationViewSet, basename="reservation")
router.register("security-groups", views.SecurityGroupViewSet, basename="securitygroup")
router.register("security-group-rules", views.RuleViewSet, basename="securitygrouprule")
router.register("public-ip-pools", views.PublicIPPoolViewSet, basename="publicippool")
router.register("public-ips", views.PublicIPViewSet, basename="publicip")
router.register("nics", views.NicViewSet, basename="vmnic")
router.register("template-nics", views.TemplateNicViewSet, basename="templatenic")
router.register("host-networks", views.HostNetworkViewSet, basename="hostnetwork")
