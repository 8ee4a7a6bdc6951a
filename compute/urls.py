from django.urls import path

from . import views, views_hosts

urlpatterns = [
    path("vms/", views.vm_list, name="ui-vm-list"),
    path("vms/create/", views.vm_create, name="vm-create"),
    path("vms/chips/", views.vm_chips, name="vm-chips"),
    path("vms/create/preview/", views.vm_create_preview, name="vm-create-preview"),
    path("vms/bulk/", views.vm_bulk, name="vm-bulk"),
    path("vms/<int:pk>/", views.vm_detail, name="ui-vm-detail"),
    path("vms/<int:pk>/live/", views.vm_live, name="vm-live"),
    path("vms/<int:pk>/menu/", views.vm_menu, name="vm-menu"),
    path("vms/<int:pk>/metrics/", views.vm_metrics, name="vm-metrics"),
    path("vms/<int:pk>/log/", views.vm_log, name="vm-log"),
    path("vms/<int:pk>/monitoring/", views.vm_monitoring, name="vm-monitoring"),
    path("vms/<int:pk>/action/", views.vm_action, name="vm-action"),
    path("vms/<int:pk>/console/", views.vm_console, name="ui-vm-console"),
    path("vms/<int:pk>/console/token/", views.vm_console_token, name="ui-vm-console-token"),
    path("vms/<int:pk>/console/log/", views.vm_console_log, name="ui-vm-console-log"),
    path("templates/", views.template_list, name="template-list"),
    path("templates/<int:pk>/edit/", views.template_edit, name="template-edit"),
    path("templates/<int:pk>/delete/", views.template_delete, name="template-delete"),
    path("hosts/", views_hosts.host_list, name="ui-host-list"),
    path("hosts/register/", views_hosts.host_register, name="host-register"),
    path("hosts/<int:pk>/", views_hosts.host_detail, name="ui-host-detail"),
    path("hosts/<int:pk>/action/", views_hosts.host_action, name="host-action"),
    path("hosts/<int:pk>/bmc/", views_hosts.host_bmc, name="ui-host-bmc"),
    path("hosts/<int:pk>/metrics/", views_hosts.host_metrics, name="host-metrics"),
]
