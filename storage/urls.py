"""Browser pages of the storage manager (mounted under /storage/ by portal/urls.py)."""

from django.urls import URLPattern, path

from . import views_datastores

urlpatterns: list[URLPattern] = []
urlpatterns += [
    path("datastores/", views_datastores.datastore_list, name="ui-datastore-list"),
    path("datastores/create/", views_datastores.datastore_create, name="datastore-create"),
    path("datastores/<int:pk>/", views_datastores.datastore_detail, name="ui-datastore-detail"),
    path("datastores/<int:pk>/action/", views_datastores.datastore_action, name="datastore-action"),
]
