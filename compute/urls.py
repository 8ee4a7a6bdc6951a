from django.urls import path

from . import views

urlpatterns = [
    path("vms/", views.vm_list, name="vm-list"),
]
