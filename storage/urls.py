"""Browser pages of the storage manager (mounted under /storage/ by portal/urls.py)."""

from django.urls import URLPattern, path

from . import views_datastores

urlpatterns: list[URLPattern] = []
urlpatterns += [
    path("datastores/", views_datastores.datastore_list, name="ui-datastore-list"),
    path("datastores/create/", views_datastores.datastore_create, name="datastore-create"),
    path("datastores/<int:pk>/", views_datastores.datastore_detail, name="ui-datastore-detail"),
    path("datastores/<int:pk>/action/", views_datastores.datastore_action, name="datastore-action"),
    path("datastores/<int:pk>/edit/", views_datastores.datastore_edit, name="datastore-edit"),
]

from . import views_volumes  # noqa: E402

urlpatterns += [
    path("volumes/", views_volumes.volume_list, name="ui-volume-list"),
    path("volumes/create/", views_volumes.volume_create, name="volume-create"),
    path("volumes/<int:pk>/", views_volumes.volume_detail, name="ui-volume-detail"),
    path("volumes/<int:pk>/action/", views_volumes.volume_action, name="volume-action"),
    path("vms/<int:pk>/attach/", views_volumes.vm_volume_attach, name="vm-volume-attach"),
    path("vm-disks/<int:pk>/action/", views_volumes.vm_disk_action, name="vm-disk-action"),
    path("templates/<int:pk>/disks/", views_volumes.template_disks, name="ui-template-disks"),
    path("template-disks/<int:pk>/remove/", views_volumes.template_disk_remove, name="template-disk-remove"),
]
