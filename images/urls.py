"""Browser pages of the images manager (mounted under /images/ by portal/urls.py)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.image_list, name="ui-image-list"),
    path("upload/", views.image_upload, name="ui-image-upload"),
    path("datablock/", views.datablock_create, name="image-datablock"),
    path("import/", views.ova_import, name="image-import"),
    path("<int:pk>/", views.image_detail, name="ui-image-detail"),
    path("<int:pk>/progress/", views.image_progress, name="image-progress"),
    path("<int:pk>/action/", views.image_action, name="image-action"),
    path("<int:pk>/edit/", views.image_edit, name="image-edit"),
    path("<int:pk>/share/", views.image_share, name="image-share"),
]
