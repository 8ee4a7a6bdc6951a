"""REST API of the information manager: the event stream and webhooks (changed through
``monitoring.services``; the serializers check shapes)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api import ModelSerializer, Text, client_ip
from portal.filters import CharFilter, DateTimeFilter, FilterSet, IdFilter
from tenants.querysets import is_cloud_admin

from .. import services
from ..models import Event, Webhook, WebhookDelivery


class EventSerializer(ModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "type", "object_type", "object_id", "object_name", "project", "actor", "payload", "created_at"]
        read_only_fields = fields  # events are read, never written through the API


class EventFilter(FilterSet):
    type = CharFilter(method="filter_type", help_text="exact type, or a prefix ending in '.' or '*'")
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte")
    after = IdFilter(field_name="id", lookup_expr="gt", help_text="events newer than this id (follow)")

    class Meta:
        model = Event
        fields = ["type", "object_type", "object_id", "project", "actor", "since", "after"]

    def filter_type(self, qs: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        if value.endswith(("*", ".")):
            return qs.filter(type__startswith=value.rstrip("*"))
        return qs.filter(type=value)


class EventViewSet(viewsets.ReadOnlyModelViewSet):
    """Every state change and every action in the caller's projects (all of them for admins)."""

    serializer_class = EventSerializer
    filterset_class = EventFilter

    def get_queryset(self) -> QuerySet[Event]:
        return Event.objects.restrict(self.request.user, "view")


class AdminOnly(permissions.BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return is_cloud_admin(request.user)


class WebhookSerializer(ModelSerializer):
    event_types = serializers.ListField(
        child=Text(min_length=1, max_length=200),
        min_length=1,
        max_length=100,
        help_text='patterns of event types, e.g. ["vm.state.*_FAILURE", "host.state.ERROR"]',
    )
    max_attempts = serializers.IntegerField(min_value=1, max_value=20, required=False)

    class Meta:
        model = Webhook
        fields = ["id", "name", "url", "event_types", "secret", "enabled", "max_attempts", "created_at"]
        read_only_fields = ["created_at"]
        extra_kwargs = {"secret": {"required": False}}

    def validate_event_types(self, value: Any) -> list[str]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise serializers.ValidationError('a non-empty list of event type patterns, e.g. ["vm.state.*_FAILURE"]')
        return value

    def validate_max_attempts(self, value: int) -> int:
        if not 1 <= value <= 20:
            raise serializers.ValidationError("max_attempts must be between 1 and 20")
        return value


class DeliverySerializer(ModelSerializer):
    event_type = Text(source="event.type", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = ["id", "event", "event_type", "status", "attempts", "response_code", "last_error", "log",
                  "next_attempt_at", "delivered_at", "created_at"]  # fmt: skip
        read_only_fields = fields  # deliveries are read, never written through the API


class WebhookViewSet(viewsets.ModelViewSet):
    """Webhooks on event types (cloud administrators); deliveries are signed and retried."""

    serializer_class = WebhookSerializer
    permission_classes = [AdminOnly]

    def get_queryset(self) -> QuerySet[Webhook]:
        return Webhook.objects.restrict(self.request.user, "view")

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.create_webhook(
            self.request.user, ip=client_ip(self.request), **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.update_webhook(
            self.request.user, serializer.instance.pk, ip=client_ip(self.request), **serializer.validated_data
        )

    def perform_destroy(self, instance: Webhook) -> None:
        services.delete_webhook(self.request.user, instance.pk, ip=client_ip(self.request))

    @extend_schema(responses={200: DeliverySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        hook = self.get_object()
        page = self.paginate_queryset(hook.deliveries.select_related("event"))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)
