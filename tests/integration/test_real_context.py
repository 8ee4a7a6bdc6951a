"""Contextualization on the real QEMU host: the guest reads its NoCloud seed.

The test guest (scripts/build-test-guest.sh) mounts the seed CD-ROM, takes its hostname from
``meta-data`` and computes, in busybox, the OpenSSH SHA256 fingerprint of the first public key
in the seed; it prints both on the serial console. The tests read them back and compare them
with what the portal shows: the VM's hostname, and the fingerprint tenants computed when the
member registered the key through the API.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings as dj_settings

from compute.drivers.registry import get_driver
from compute.models import Host, VirtualMachine
from compute.states import VMState as S
from tests.conftest import client_for, wait_for

from .test_real_host import GUEST, _serial, real_host_ready  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def new_public_key(comment: str) -> str:
    """A fresh ed25519 public key line, as ``ssh-keygen`` would write it."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}"


def qemu_host(admin: Any) -> int:
    resp = admin.post(
        "/api/v1/hosts/", {"name": "local-qemu", "uri": "qemu:///system", "hypervisor": "qemu"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    host_id = int(resp.json()["id"])
    wait_for(lambda: Host.objects.filter(pk=host_id, state="MONITORED").exists(), timeout=60)
    return host_id


def seed_lines(vm: VirtualMachine) -> tuple[str, str]:
    """The hostname and key fingerprint the guest printed (waits for both)."""
    log = wait_for(
        lambda: (t := _serial(vm)) and "NEPHELE-GUEST-READY" in t and "NEPHELE-SSHKEY" in t and t,
        timeout=180,
        interval=1,
    )
    host = re.search(r"NEPHELE-GUEST-READY hostname=(\S+)", log)
    fp = re.search(r"NEPHELE-SSHKEY fingerprint=(SHA256:[A-Za-z0-9+/]+)", log)
    assert host and fp, log[-2000:]
    return host.group(1), fp.group(1)


def domain_xml(vm: VirtualMachine) -> str:
    return subprocess.run(
        ["virsh", "-c", "qemu:///system", "dumpxml", vm.domain_name], capture_output=True, text=True, check=True
    ).stdout


def terminate(api: Any, pk: int) -> None:
    api.post(f"/api/v1/vms/{pk}/action/", {"action": "terminate", "hard": True}, format="json")
    wait_for(lambda: VirtualMachine.objects.get(pk=pk).state in (S.DONE, S.EPILOG_FAILURE), timeout=90)


def test_guest_reads_hostname_and_owner_key_from_its_seed(
    real_host_ready: None,  # noqa: F811
    agent: Any,
    admin_user: Any,
    member: Any,
    project: Any,
    other_tenant: Any,
) -> None:
    """Given a member with two SSH keys (and another user with a key of their own), when the
    member deploys the test guest from a boot image on the real QEMU host, then the guest
    names itself after the VM and prints the fingerprint of the member's first key, the one
    tenants computed; the seed is a read-only CD-ROM of the domain and is gone after terminate."""
    admin = client_for(admin_user)
    api = client_for(member)
    first = api.post("/api/v1/ssh-keys/", {"name": "laptop", "public_key": new_public_key("m@laptop")}, format="json")
    assert first.status_code == 201, first.content
    second = api.post("/api/v1/ssh-keys/", {"name": "ws", "public_key": new_public_key("m@ws")}, format="json")
    assert second.status_code == 201, second.content
    foreign = client_for(other_tenant).post(
        "/api/v1/ssh-keys/", {"name": "theirs", "public_key": new_public_key("o@x")}, format="json"
    )
    assert foreign.status_code == 201, foreign.content
    host_id = qemu_host(admin)
    image = admin.post(
        "/api/v1/boot-images/",
        {
            "project": project.pk, "name": "tiny-guest", "kind": "kernel", "public": True,
            "kernel_path": str(GUEST / "vmlinuz"), "initrd_path": str(GUEST / "initrd.img"),
            "cmdline": "console=ttyS0 quiet",
        },
        format="json",
    )  # fmt: skip
    assert image.status_code == 201, image.content
    tpl = api.post(
        "/api/v1/templates/",
        {"project": project.pk, "name": "tiny", "vcpu": 1, "memory_mb": 256, "boot_image": image.json()["id"],
         "hypervisor": "qemu"},
        format="json",
    )  # fmt: skip
    assert tpl.status_code == 201, tpl.content
    created = api.post(
        "/api/v1/vms/",
        {"name": "Web Server_1", "project": project.pk, "template": tpl.json()["id"],
         "user_data": "#cloud-config\npackages: [nginx]\n"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 202, created.content
    pk = created.json()[0]["id"]
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=pk, state=S.RUNNING).first(), timeout=120)
    assert vm.host_id == host_id
    seed = Path(dj_settings.NEPHELE_STATE_DIR) / "context" / f"{vm.domain_name}.iso"
    try:
        hostname, fingerprint = seed_lines(vm)
        detail = api.get(f"/api/v1/vms/{pk}/").json()
        assert hostname == "web-server-1" == detail["context"]["hostname"]
        assert fingerprint == first.json()["fingerprint"]
        assert [k["fingerprint"] for k in detail["context"]["keys"]] == [
            first.json()["fingerprint"],
            second.json()["fingerprint"],
        ]
        assert foreign.json()["fingerprint"] not in str(detail["context"])
        assert detail["context"]["user_data_set"] is True
        assert seed.exists()
        xml = domain_xml(vm)
        cdrom = re.search(r"<disk type='file' device='cdrom'>.*?</disk>", xml, re.S)
        assert cdrom and str(seed) in cdrom.group(0) and "<readonly/>" in cdrom.group(0)
        assert "NEPHELE-SEED dev=/dev/sr0 fs=iso9660" in _serial(vm)
    finally:
        terminate(api, pk)
    assert VirtualMachine.objects.get(pk=pk).state == S.DONE
    assert not seed.exists()
    assert all(d.name != vm.domain_name for d in get_driver("libvirt", "qemu:///system").list_domains())


CHUNK = 1 << 20


def upload_image(api: Any, project: Any, path: Path, name: str, type_: str) -> dict[str, Any]:
    """Upload ``path`` through the image API in 1 MiB ``Content-Range`` chunks; the ready image."""
    import hashlib

    data = path.read_bytes()
    created = api.post(
        "/api/v1/images/",
        {"project": project.pk, "name": name, "type": type_, "size_bytes": len(data),
         "sha256": hashlib.sha256(data).hexdigest(), "filename": path.name},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    chunks = 0
    for start in range(0, len(data), CHUNK):
        part = data[start : start + CHUNK]
        resp = api.put(
            f"/api/v1/images/{pk}/upload/",
            data=part,
            content_type="application/octet-stream",
            HTTP_CONTENT_RANGE=f"bytes {start}-{start + len(part) - 1}/{len(data)}",
        )
        assert resp.status_code == 200, resp.content
        chunks += 1
    assert chunks > 1  # really in chunks
    return wait_for(
        lambda: (b := api.get(f"/api/v1/images/{pk}/").json()) and b["state"] in ("ready", "error") and b,
        timeout=60,
    )


def partitions(vm: VirtualMachine) -> list[set[str]]:
    """Every ``NEPHELE-PARTITIONS`` line the guest printed, in order."""
    return [set(m.split()) for m in re.findall(r"NEPHELE-PARTITIONS ?([^\r\n]*)", _serial(vm))]


def test_guest_from_uploaded_kernel_and_ramdisk_images_reads_its_seed_and_sees_a_hot_volume(
    real_host_ready: None,  # noqa: F811
    agent: Any,
    admin_user: Any,
    member: Any,
    project: Any,
) -> None:
    """Given the guest's kernel and initrd uploaded through the image API in chunks and a
    template booting from them, when the member deploys it on the real QEMU host, then the guest
    prints the VM's hostname and the member's key fingerprint from its seed; and a volume
    attached to the running guest appears in its /proc/partitions."""
    admin = client_for(admin_user)
    api = client_for(member)
    key = api.post("/api/v1/ssh-keys/", {"name": "laptop", "public_key": new_public_key("m@laptop")}, format="json")
    assert key.status_code == 201, key.content
    for kind in ("image", "system"):
        ds = admin.post("/api/v1/datastores/", {"name": f"{kind}-ds", "kind": kind}, format="json")
        assert ds.status_code == 201, ds.content
    qemu_host(admin)

    kernel = upload_image(api, project, GUEST / "vmlinuz", "guest-kernel", "kernel")
    ramdisk = upload_image(api, project, GUEST / "initrd.img", "guest-initrd", "ramdisk")
    assert (kernel["state"], ramdisk["state"]) == ("ready", "ready"), (kernel, ramdisk)
    tpl = api.post(
        "/api/v1/templates/",
        {"project": project.pk, "name": "from-images", "vcpu": 1, "memory_mb": 256, "hypervisor": "qemu"},
        format="json",
    )
    assert tpl.status_code == 201, tpl.content
    for img in (kernel, ramdisk):
        td = api.post("/api/v1/template-disks/", {"template": tpl.json()["id"], "image": img["id"]}, format="json")
        assert td.status_code == 201, td.content

    created = api.post(
        "/api/v1/vms/", {"name": "From Images", "project": project.pk, "template": tpl.json()["id"]}, format="json"
    )
    assert created.status_code == 202, created.content
    pk = created.json()[0]["id"]
    vm = wait_for(lambda: VirtualMachine.objects.filter(pk=pk, state__in=[S.RUNNING, *FAILED]).first(), timeout=120)
    assert vm.state == S.RUNNING, vm.last_error
    try:
        assert seed_lines(vm) == ("from-images", key.json()["fingerprint"])
        xml = domain_xml(vm)
        assert f"<kernel>{kernel_path(kernel['id'])}</kernel>" in xml  # booted from the uploaded image

        before = wait_for(lambda: partitions(vm), timeout=60, interval=1)[-1]
        vol = api.post("/api/v1/volumes/", {"project": project.pk, "name": "data", "size_bytes": 64 << 20},
                       format="json")  # fmt: skip
        assert vol.status_code in (201, 202), vol.content
        vid = vol.json()["id"]
        wait_for(lambda: api.get(f"/api/v1/volumes/{vid}/").json()["state"] == "available", timeout=60)
        att = api.post(f"/api/v1/volumes/{vid}/attach/", {"vm": pk}, format="json")
        assert att.status_code in (200, 202), att.content
        body = wait_for(
            lambda: (b := api.get(f"/api/v1/volumes/{vid}/").json()) and b["state"] not in ("attaching",) and b,
            timeout=90,
        )
        assert body["state"] == "in-use", body
        target = body["target"]
        wait_for(lambda: target in partitions(vm)[-1], timeout=60, interval=1)
        assert partitions(vm)[-1] - before == {target}  # the guest saw exactly the new disk appear
        assert VirtualMachine.objects.get(pk=pk).state == S.RUNNING  # hot: no reboot
    finally:
        terminate(api, pk)


FAILED = (S.PROLOG_FAILURE, S.BOOT_FAILURE)


def kernel_path(image_id: int) -> str:
    from images.models import Image
    from storage.vmdisks import image_file

    return image_file(Image.objects.get(pk=image_id))
