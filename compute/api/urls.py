from rest_framework.routers import DefaultRouter

from . import views

router = DefaultRouter()
router.register("clusters", views.ClusterViewSet, basename="cluster")
router.register("hosts", views.HostViewSet, basename="host")
router.register("boot-images", views.BootImageViewSet, basename="bootimage")
router.register("templates", views.VMTemplateViewSet, basename="vmtemplate")
router.register("vms", views.VMViewSet, basename="vm")
router.register("audit", views.AuditViewSet, basename="audit")

urlpatterns = router.urls
