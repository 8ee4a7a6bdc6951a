"""Load demo data: an admin, a demo organization/project/user, simulated hosts, templates.

Safe to run again: existing objects are kept, passwords are kept in ``.run/`` and re-printed.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from compute import services
from compute.drivers.simulated import write_node
from compute.models import BootImage, Cluster, Host, VMTemplate
from tenants.models import Membership, Organization, Project
from tenants.roles import Role

SIM_HOSTS = [
    ("sim-1", 16, 65536, 500),
    ("sim-2", 16, 65536, 500),
    ("sim-3", 32, 131072, 1000),
    ("sim-4", 8, 32768, 200),
]


def _password(name: str) -> str:
    path = Path(settings.NEPHELE_STATE_DIR) / f"{name}-password"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(12)
    path.write_text(value)
    path.chmod(0o600)
    return value


def libvirtd_available() -> bool:
    if not shutil.which("virsh"):
        return False
    probe = subprocess.run(["virsh", "-c", "qemu:///system", "version"], capture_output=True, timeout=20, check=False)
    return probe.returncode == 0


class Command(BaseCommand):
    help = "Create demo users, a project, four simulated hosts (and the local QEMU host if libvirtd runs)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-qemu", action="store_true", help="do not register the local QEMU host")

    @transaction.atomic
    def handle(self, *args: Any, **opts: Any) -> None:
        User = get_user_model()
        admin_pw, demo_pw = _password("admin"), _password("demo")
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if created:
            admin.set_password(admin_pw)
            admin.save()
        demo, created = User.objects.get_or_create(username="demo", defaults={"email": "demo@example.org"})
        if created:
            demo.set_password(demo_pw)
            demo.save()
        org, _ = Organization.objects.get_or_create(name="demo")
        project, _ = Project.objects.get_or_create(organization=org, name="demo", defaults={"description": "Demo"})
        Membership.objects.get_or_create(user=demo, project=project, defaults={"role": Role.ADMIN})
        Membership.objects.get_or_create(user=admin, project=project, defaults={"role": Role.ADMIN})

        sim, _ = Cluster.objects.get_or_create(name="sim", defaults={"placement_policy": "packing"})
        sim_dir = Path(settings.NEPHELE_STATE_DIR) / "sim"
        for i, (name, vcpu, mem, disk) in enumerate(SIM_HOSTS):
            uri = write_node(sim_dir, name, vcpu, mem, disk)
            if not Host.objects.filter(name=name).exists():
                labels = {"zone": "a" if i % 2 == 0 else "b"}
                if i == 2:
                    labels["ssd"] = "yes"
                services.register_host(admin, name=name, uri=uri, hypervisor="test", cluster=sim, labels=labels)

        from storage.models import Datastore
        from storage.services import create_datastore

        for ds_name, kind in (("default-images", "image"), ("default-system", "system")):
            if not Datastore.objects.filter(name=ds_name).exists():
                path = str(Path(settings.NEPHELE_STATE_DIR) / "datastores" / kind)
                create_datastore(admin, name=ds_name, kind=kind, driver="dir", path=path)

        self._network_and_images(admin, demo, project)

        sim_image, _ = BootImage.objects.get_or_create(
            name="sim-image", defaults={"project": project, "owner": admin, "kind": "disk", "public": True}
        )
        for name, vcpu, mem in (("small", 1, 512), ("medium", 2, 2048), ("large", 4, 8192)):
            VMTemplate.objects.get_or_create(
                name=name,
                project=project,
                defaults={
                    "owner": admin, "vcpu": vcpu, "memory_mb": mem, "disk_gb": 10 * vcpu, "boot_image": sim_image,
                    "hypervisor": "test", "public": True, "description": f"{vcpu} vCPU, {mem} MiB on simulated hosts",
                },
            )  # fmt: skip

        guest = Path(settings.BASE_DIR) / ".cache" / "guest"
        if not opts["no_qemu"] and libvirtd_available():
            qemu, _ = Cluster.objects.get_or_create(name="qemu", defaults={"placement_policy": "striping"})
            if not Host.objects.filter(name="local-qemu").exists():
                services.register_host(admin, name="local-qemu", uri="qemu:///system", hypervisor="qemu", cluster=qemu)
            if (guest / "vmlinuz").exists():
                tiny, _ = BootImage.objects.get_or_create(
                    name="tiny-guest",
                    defaults={
                        "project": project, "owner": admin, "kind": "kernel", "public": True,
                        "kernel_path": str(guest / "vmlinuz"), "initrd_path": str(guest / "initrd.img"),
                        "cmdline": "console=ttyS0 nephele.marker=vm-{vm_name}",
                    },
                )  # fmt: skip
                VMTemplate.objects.get_or_create(
                    name="tiny-guest",
                    project=project,
                    defaults={
                        "owner": admin, "vcpu": 1, "memory_mb": 256, "boot_image": tiny, "hypervisor": "qemu",
                        "public": True, "description": "A busybox guest on the local QEMU host (TCG)",
                    },
                )  # fmt: skip
            self.stdout.write("registered the local QEMU host (qemu:///system)")
        else:
            self.stdout.write("libvirtd not available: only simulated hosts")
        self.stdout.write(self.style.SUCCESS(f"admin password: {admin_pw}   (user 'admin')"))
        self.stdout.write(self.style.SUCCESS(f"demo password:  {demo_pw}   (user 'demo', project demo/demo)"))

    def _network_and_images(self, admin: Any, demo: Any, project: Project) -> None:
        """A VNI pool, a public IP pool (a documentation range: never routed), the demo
        project's network and an empty data block in the image repository."""
        from images.models import Image
        from images.services.derive import create_datablock
        from network.models import PublicIPPool, VirtualNetwork, VniPool
        from network.services import networks, publicips

        if not VniPool.objects.exists():
            networks.create_vni_pool(admin, name="demo-vnis", first=1000, last=1999)
        if not PublicIPPool.objects.exists():
            publicips.create_pool(admin, name="demo-public", cidr="203.0.113.0/24", first="203.0.113.10",
                                  last="203.0.113.200")  # fmt: skip
        if not VirtualNetwork.objects.filter(project=project, name="demo-net").exists():
            networks.create_network(demo, project=project, name="demo-net", cidr4="10.10.0.0/24",
                                    gateway4="10.10.0.1", dns="10.10.0.1")  # fmt: skip
        if not Image.objects.filter(project=project, name="scratch").exists():
            create_datablock(demo, project=project, name="scratch", size_gb=1, description="An empty 1 GiB data block")
