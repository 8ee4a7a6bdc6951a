"""REST API of the image repository: every queryset starts from the access gate, every
change goes through ``images.services``."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api import ShareSerializer, SharesSerializer
from portal.errors import InvalidInput
from tenants import sharing

from .. import services
from ..filters import ImageFilter, with_visibility
from ..models import Image, ImageState
from ..services import derive, ovf, upload
from . import serializers as s


class RawStreamParser(BaseParser):
    """Leaves the body unread: the upload view streams it from the request itself."""

    media_type = "application/octet-stream"

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        return stream


class ImageViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):  # fmt: skip
    """Images of the user's projects, shared with them, or public.

    Upload: ``POST /images/`` (metadata) then ``PUT /images/{id}/upload/`` with the file in
    ``Content-Range`` chunks; the last chunk finalises (checks, then ``ready`` or ``error``).
    """

    serializer_class = s.ImageSerializer
    filterset_class = ImageFilter
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Image]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user, no query
            return Image.objects.none()
        qs = Image.objects.restrict(self.request.user, "view").select_related("owner")
        return with_visibility(qs).order_by("name", "pk")

    def _reply(self, img: Image, code: int = status.HTTP_200_OK) -> Response:
        img = self.get_queryset().filter(pk=img.pk).first() or img
        return Response(s.ImageSerializer(img).data, status=code)

    @extend_schema(request=s.ImageCreateSerializer, responses={201: s.ImageSerializer})
    def create(self, request: Request) -> Response:
        ser = s.ImageCreateSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        img = upload.create_upload(
            request.user,
            project=d["project"],
            name=d["name"],
            datastore=d.get("datastore"),
            type=d["type"],
            description=d["description"],
            persistent=d["persistent"],
            size_bytes=d["size_bytes"],
            sha256=d["sha256"],
            source_name=d["filename"],
        )
        return self._reply(img, status.HTTP_201_CREATED)

    @extend_schema(request=s.ImageSerializer, responses={200: s.ImageSerializer})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        img = self.get_object()
        ser = s.ImageSerializer(img, data=request.data, partial=True)
        ser.is_valid(raise_exception=True)
        img = services.update_image(request.user, img.pk, **ser.validated_data)
        return self._reply(img)

    def perform_destroy(self, instance: Image) -> None:
        services.delete_image(self.request.user, instance.pk)

    @extend_schema(
        request={"application/octet-stream": bytes},
        parameters=[
            OpenApiParameter("Content-Range", str, OpenApiParameter.HEADER, description="bytes START-END/TOTAL")
        ],
        responses={200: s.ImageSerializer, 409: OpenApiResponse(description="chunk out of order / not uploading")},
    )
    @action(detail=True, methods=["put"], parser_classes=[RawStreamParser])
    def upload(self, request: Request, pk: str | None = None) -> Response:
        """One chunk of the file (or the whole file without ``Content-Range``). The chunk that
        reaches the total finalises; with an unknown total (``bytes a-b/*``) an empty request
        finalises."""
        img = self.get_object()
        raw = request._request
        length_header = raw.META.get("CONTENT_LENGTH")
        length = int(length_header) if length_header else None
        if not length and not raw.META.get("HTTP_CONTENT_RANGE") and img.uploaded_bytes:
            # an empty request after chunks sent with an unknown total ("bytes a-b/*"): finalise
            img = upload.finish_upload(request.user, img.pk)
            return self._upload_reply(img)
        start, size, total = upload.parse_range(raw.META.get("HTTP_CONTENT_RANGE"), length)
        img = upload.receive_chunk(request.user, img.pk, raw, start=start, length=size, total=total)
        return self._upload_reply(img)

    def _upload_reply(self, img: Image) -> Response:
        if img.state == ImageState.ERROR:
            body = {"detail": img.state_message, "field": "file", "file": [img.state_message], "image": img.pk}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return self._reply(img)

    @extend_schema(request=s.DatablockSerializer, responses={201: s.ImageSerializer})
    @action(detail=False, methods=["post"])
    def datablock(self, request: Request) -> Response:
        """An empty data block of ``size_gb`` GiB."""
        ser = s.DatablockSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        img = derive.create_datablock(request.user, **ser.validated_data)
        return self._reply(img, status.HTTP_201_CREATED)

    @extend_schema(request=s.OvaImportSerializer, responses={202: s.OvaImportResultSerializer})
    @action(
        detail=False, methods=["post"], url_path="import-ovf", parser_classes=[MultiPartParser, FormParser, JSONParser]
    )
    def import_ovf(self, request: Request) -> Response:
        """Import an OVA (or an .ovf with its disks): a template and one image per disk."""
        from ..services.core import project_for

        if not hasattr(request.data, "get"):
            raise InvalidInput("the body must be an object (multipart form or JSON object)", field="non_field_errors")
        project_for(request.user, request.data.get("project"))  # 404 before looking at the files
        ser = s.OvaImportSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        common = {"project": d["project"], "datastore": d.get("datastore"), "name": d["name"]}
        if d["file"].name.lower().endswith(".ovf"):
            disks = {f.name: f for f in request.FILES.getlist("disks")}
            tpl = ovf.import_ovf(request.user, descriptor=d["file"], disks=disks, **common)
        else:
            tpl = ovf.import_ova(request.user, stream=d["file"], **common)
        imgs = with_visibility(Image.objects.filter(import_detail__template=tpl.pk)).order_by("pk")
        return Response(
            {"template": tpl.pk, "images": s.ImageSerializer(imgs, many=True).data}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        request=s.ImageActionSerializer,
        responses={200: s.ImageSerializer, 202: s.ImageSerializer, 409: OpenApiResponse(description="illegal state")},
    )
    @action(detail=True, methods=["post"], url_path="action", parser_classes=[JSONParser, FormParser])
    def image_action(self, request: Request, pk: str | None = None) -> Response:
        """enable, disable, clone, convert (a new image), request_publish, withdraw_publish,
        publish / unpublish (cloud administrators)."""
        img = self.get_object()
        ser = s.ImageActionSerializer(data=request.data, context={"request": request})
        ser.is_valid(raise_exception=True)
        d = ser.validated_data
        act, user = d["action"], request.user
        if act in ("enable", "disable"):
            return self._reply(services.set_enabled(user, img.pk, act == "enable"))
        if act == "clone":
            new = derive.clone_image(user, img.pk, name=d["name"], datastore=d.get("datastore"))
            return self._reply(new, status.HTTP_202_ACCEPTED)
        if act == "convert":
            if "format" not in d:
                from portal.errors import InvalidInput

                raise InvalidInput("format is required to convert", field="format")
            new = derive.convert_image(user, img.pk, format=d["format"], name=d["name"], datastore=d.get("datastore"))
            return self._reply(new, status.HTTP_202_ACCEPTED)
        if act in ("request_publish", "withdraw_publish"):
            return self._reply(services.request_publish(user, img.pk, act == "request_publish"))
        return self._reply(services.set_public(user, img.pk, act == "publish"))

    @extend_schema(request=ShareSerializer, responses={200: SharesSerializer})
    @action(detail=True, methods=["get", "post", "delete"], url_path="shares")
    def shares(self, request: Request, pk: str | None = None) -> Response:
        """GET: who the image is shared with. POST / DELETE {project | user}: share / unshare."""
        img = self.get_object()
        if request.method != "GET":
            ser = ShareSerializer(data=request.data, context={"request": request})
            ser.is_valid(raise_exception=True)
            fn = services.share_image if request.method == "POST" else services.unshare_image
            fn(
                request.user,
                img.pk,
                project_id=ser.validated_data.get("project"),
                username=ser.validated_data.get("user"),
            )
        return Response(sharing.visible_shares(request.user, img))
