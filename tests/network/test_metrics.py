"""Lease usage on the Prometheus endpoint (issue 6's network figures)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from compute import services as compute
from network.services import nics
from tenants import credentials

from .factories import make_network

pytestmark = pytest.mark.django_db


def test_lease_usage_is_exposed(admin_user: Any, member: Any, project: Any, template: Any) -> None:
    net = make_network(member, project, "blue", "10.0.0.0/29")
    (vm,) = compute.create_vms(member, project=project, template=template, name="v", hold=True)
    nics.attach_nic(member, vm.pk, network=net.pk)
    _t, secret = credentials.create_token(admin_user, name="prometheus")
    text = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {secret}").content.decode()
    labels = f'network="blue#{net.pk}",project="{project.pk}"'
    assert f"nephele_network_leases_used{{{labels}}} 1.0" in text
    assert f"nephele_network_leases_total{{{labels}}} 5.0" in text
