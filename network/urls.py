"""Browser pages of the network manager (mounted under /network/ by portal/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.network_list, name="ui-network-list"),
    path("<int:pk>/", views.network_detail, name="ui-network-detail"),
    path("security-groups/", views.security_groups, name="ui-security-groups"),
    path("public-ips/", views.public_ips, name="ui-public-ips"),
    path("topology/", views.topology_page, name="ui-network-topology"),
    path("admin/", views.network_admin, name="ui-network-admin"),
    path("action/", views.network_action, name="ui-network-action"),
]
