"""factory_boy factories for the objects tests need."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from compute.models import BootImage, Cluster, VMTemplate
from tenants.models import Membership, Organization, Project
from tenants.roles import Role


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-123456789")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"org{n}")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"project{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    project = factory.SubFactory(ProjectFactory)
    role = Role.MEMBER


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    name = factory.Sequence(lambda n: f"c{n}")


class BootImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BootImage

    project = factory.SubFactory(ProjectFactory)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"image{n}")
    kind = "disk"
    public = True


class VMTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VMTemplate

    project = factory.SubFactory(ProjectFactory)
    owner = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"tpl{n}")
    vcpu = 1
    memory_mb = 512
    disk_gb = 10
    hypervisor = "test"
