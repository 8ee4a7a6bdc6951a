"""URL map: the browser UI, the REST API under /api/v1/, its schema and docs, the Django admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from compute.api.urls import router as compute_router
from images.api.urls import router as images_router
from monitoring import metrics as monitoring_metrics
from monitoring import views as monitoring_views
from monitoring.api.views import EventViewSet, WebhookViewSet
from network.api.urls import router as network_router
from storage.api.urls import router as storage_router
from tenants import kerberos, twofactor
from tenants import views as tenant_views
from tenants.api import (
    ApiTokenViewSet,
    OrganizationViewSet,
    ProjectAdminViewSet,
    QuotaDefaultViewSet,
    SSHKeyViewSet,
    UserAdminViewSet,
)
from tenants.login import LoginView

from . import views
from .api import Router

api_router = Router()
api_router.registry.extend(compute_router.registry)
api_router.registry.extend(storage_router.registry)
api_router.registry.extend(images_router.registry)
api_router.registry.extend(network_router.registry)
api_router.register("events", EventViewSet, basename="event")
api_router.register("webhooks", WebhookViewSet, basename="webhook")
api_router.register("organizations", OrganizationViewSet, basename="organization")
api_router.register("projects", ProjectAdminViewSet, basename="project")
api_router.register("users", UserAdminViewSet, basename="user")
api_router.register("quota-defaults", QuotaDefaultViewSet, basename="quota-default")
api_router.register("tokens", ApiTokenViewSet, basename="token")
api_router.register("ssh-keys", SSHKeyViewSet, basename="sshkey")

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("login/kerberos/", kerberos.login_kerberos, name="login-kerberos"),
    path("project/switch/", views.switch_project, name="switch-project"),
    path("account/2fa/", twofactor.account_2fa, name="account-2fa"),
    path("account/", tenant_views.account, name="account"),
    path("account/action/", tenant_views.account_action, name="account-action"),
    path("identity/", tenant_views.identity, name="identity"),
    path("identity/action/", tenant_views.identity_action, name="identity-action"),
    path("identity/quotas/", tenant_views.quota_page, name="quotas"),
    path("identity/quotas/action/", tenant_views.quota_action, name="quota-action"),
    path("compute/", include("compute.urls")),
    path("storage/", include("storage.urls")),
    path("images/", include("images.urls")),
    path("network/", include("network.urls")),
    path("events/", monitoring_views.events, name="events"),
    path("events/audit/", monitoring_views.audit, name="audit"),
    path("metrics", monitoring_metrics.metrics, name="metrics"),
    path("webhooks/", monitoring_views.webhooks, name="webhooks"),
    path("api/v1/", include(api_router.urls)),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # the split view serves its start-up script as a file, so the docs page needs no inline script (CSP)
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

handler400 = "portal.handlers.bad_request"
handler403 = "portal.handlers.permission_denied"
handler404 = "portal.handlers.not_found"
handler500 = "portal.handlers.server_error"
