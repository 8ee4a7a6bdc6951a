"""Contextualization: the NoCloud seed ISO, what goes into it, and where people see it.

The ISO is built for real with pycdlib and read back with pycdlib (its Rock Ridge and Joliet
names, its label); VMs are created through the service, the API and the browser form, and
deployed on libvirt's test driver with the real agent code (``settle``), which writes the seed
at PROLOG and removes it at EPILOG.
"""

from __future__ import annotations

import email
import io
import os
from pathlib import Path
from typing import Any

import pycdlib
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.test import Client

from compute import context as ctx
from compute import services
from compute.models import VirtualMachine
from compute.services.context import context_spec
from compute.states import VMState as S
from portal.errors import InvalidInput
from tenants.credentials import add_ssh_key
from tests.factories import MembershipFactory, UserFactory

from .helpers import act, settle

LIMIT = ctx.USER_DATA_MAX_BYTES


def new_public_key(comment: str = "k") -> str:
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + f" {comment}"


def spec(**kw: Any) -> ctx.ContextSpec:
    base: dict[str, Any] = {"instance_id": "iid-1", "hostname": "web-1", "ssh_keys": ("ssh-ed25519 AAAAC3Nz a@b",)}
    base.update(kw)
    return ctx.ContextSpec(**base)


def iso_file(path: Path, **where: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, **where)
        return buf.getvalue()
    finally:
        iso.close()


# --------------------------------------------------------------------------------------------
# the ISO
# --------------------------------------------------------------------------------------------
def test_seed_iso_holds_the_nocloud_files_under_their_real_names(tmp_path: Path) -> None:
    net = {"version": 2, "ethernets": {"eth0": {"match": {"macaddress": "52:54:00:00:00:01"}, "dhcp4": True}}}
    path = tmp_path / "ctx" / "vm.iso"
    assert ctx.build_nocloud_seed(spec(network_config=net), path) is True

    assert ctx.seed_label(path) == "cidata"
    meta = yaml.safe_load(iso_file(path, rr_path="/meta-data"))
    assert meta == {"instance-id": "iid-1", "local-hostname": "web-1", "public-keys": ["ssh-ed25519 AAAAC3Nz a@b"]}
    assert iso_file(path, joliet_path="/meta-data") == iso_file(path, rr_path="/meta-data")
    user = iso_file(path, rr_path="/user-data").decode()
    assert user.startswith("#cloud-config\n")
    assert yaml.safe_load(user) == {"hostname": "web-1", "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nz a@b"]}
    assert yaml.safe_load(iso_file(path, rr_path="/network-config")) == net
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert [p.name for p in path.parent.iterdir()] == ["vm.iso"]  # no temporary file left


def test_without_network_config_the_seed_has_no_network_config_file(tmp_path: Path) -> None:
    path = tmp_path / "vm.iso"
    ctx.build_nocloud_seed(spec(), path)
    assert set(ctx.read_seed(path)) == {"meta-data", "user-data"}


def test_building_twice_leaves_the_seed_alone_and_a_change_rewrites_it(tmp_path: Path) -> None:
    path = tmp_path / "vm.iso"
    assert ctx.build_nocloud_seed(spec(), path) is True
    inode = os.stat(path).st_ino
    assert ctx.build_nocloud_seed(spec(), path) is False
    assert os.stat(path).st_ino == inode
    assert ctx.build_nocloud_seed(spec(hostname="web-2"), path) is True
    assert os.stat(path).st_ino != inode  # replaced by rename, never written in place
    assert b"local-hostname: web-2" in ctx.read_seed(path)["meta-data"]


def test_a_garbage_file_at_the_seed_path_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "vm.iso"
    path.write_bytes(b"not an iso")
    assert ctx.build_nocloud_seed(spec(), path) is True
    assert set(ctx.read_seed(path)) == {"meta-data", "user-data"}


def test_remove_seed_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "vm.iso"
    ctx.build_nocloud_seed(spec(), path)
    ctx.remove_seed(path)
    ctx.remove_seed(path)
    assert not path.exists()


# --------------------------------------------------------------------------------------------
# user-data merging
# --------------------------------------------------------------------------------------------
def test_a_cloud_config_is_merged_users_keys_win_but_ssh_keys_are_added() -> None:
    mine = "#cloud-config\nhostname: custom\npackages: [nginx]\nssh_authorized_keys: [ssh-rsa AAAAB3 u@x]\n"
    merged = yaml.safe_load(ctx.render_user_data(spec(user_data=mine)))
    assert merged == {
        "hostname": "custom",
        "packages": ["nginx"],
        "ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nz a@b", "ssh-rsa AAAAB3 u@x"],
    }


def test_a_script_becomes_the_second_part_of_a_multipart() -> None:
    script = "#!/bin/sh\necho hello > /tmp/hi\n"
    message = email.message_from_string(ctx.render_user_data(spec(user_data=script)))
    parts = [p for p in message.walk() if not p.is_multipart()]
    assert message.get_content_type() == "multipart/mixed"
    assert [p.get_content_type() for p in parts] == ["text/cloud-config", "text/x-shellscript"]
    assert yaml.safe_load(parts[0].get_payload(decode=True))["hostname"] == "web-1"
    assert parts[1].get_payload(decode=True).decode() == script


def test_a_mime_multipart_keeps_its_parts_after_ours() -> None:
    mime = (
        'Content-Type: multipart/mixed; boundary="XX"\nMIME-Version: 1.0\n\n'
        "--XX\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho one\n"
        "--XX\nContent-Type: text/cloud-boothook\n\n#cloud-boothook\necho two\n--XX--\n"
    )
    message = email.message_from_string(ctx.render_user_data(spec(user_data=mime)))
    types = [p.get_content_type() for p in message.walk() if not p.is_multipart()]
    assert types == ["text/cloud-config", "text/x-shellscript", "text/cloud-boothook"]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("hello world", "must start with #cloud-config"),
        ("#cloud-config\nkey: [unclosed\n", "not valid #cloud-config YAML"),
        ("#cloud-config\n- a\n- b\n", "must be a YAML mapping"),
        ("#cloud-config\n" + "#" * LIMIT, f"the limit is {LIMIT} bytes"),
    ],
)
def test_user_data_cloud_init_cannot_read_is_refused(text: str, why: str) -> None:
    with pytest.raises(ctx.UserDataError, match=why):
        ctx.check_user_data(text)


def test_user_data_limit_counts_bytes_and_allows_exactly_16_kib() -> None:
    ctx.check_user_data("#!/bin/sh\n" + "x" * (LIMIT - 10))
    with pytest.raises(ctx.UserDataError, match="16385 bytes"):
        ctx.check_user_data("#!/bin/sh\n" + "é" * ((LIMIT - 10) // 2) + "x")  # 2 bytes each


# --------------------------------------------------------------------------------------------
# hostnames
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "hostname"),
    [
        ("web-1", "web-1"),
        ("Web Server_1", "web-server-1"),
        ("db.primary", "db-primary"),
        ('--Tom\'s <VM> & "co"--', "tom-s-vm-co"),
        ("a" * 63 + "-", "a" * 63),
        ("__..__", "vm-7"),
        ("Ünïcode", "n-code"),
    ],
)
def test_hostname_is_one_dns_label(name: str, hostname: str) -> None:
    assert ctx.dns_hostname(name, "vm-7") == hostname


# --------------------------------------------------------------------------------------------
# the ORM side: what a VM's seed carries
# --------------------------------------------------------------------------------------------
def test_seed_carries_the_owners_keys_only(member: Any, project: Any, template: Any) -> None:
    colleague = UserFactory()
    MembershipFactory(user=colleague, project=project, role="member")
    add_ssh_key(colleague, name="theirs", public_key=new_public_key("colleague"))
    k1 = add_ssh_key(member, name="b-first", public_key=new_public_key("first"))
    k2 = add_ssh_key(member, name="a-second", public_key=new_public_key("second"))
    (vm,) = services.create_vms(member, project=project, template=template, name="My VM", hold=True)

    spec_ = context_spec(vm)
    assert spec_.ssh_keys == (k1.public_key, k2.public_key)  # oldest first, whatever the names
    assert spec_.hostname == "my-vm" and spec_.instance_id == str(vm.uuid)
    assert spec_.network_config == {}  # no NICs: cloud-init falls back to DHCP


def test_a_vm_with_a_nic_gets_the_network_managers_config_in_its_seed(
    member: Any, project: Any, template: Any, tmp_path: Path
) -> None:
    from network.services import nics
    from tests.network.factories import make_network

    net = make_network(member, project, cidr4="10.9.0.0/24")
    (vm,) = services.create_vms(member, project=project, template=template, name="wired", hold=True)
    nic = nics.attach_nic(member, vm.pk, network=net.pk)
    spec_ = context_spec(VirtualMachine.objects.get(pk=vm.pk))
    path = tmp_path / "wired.iso"
    ctx.build_nocloud_seed(spec_, path)
    config = yaml.safe_load(ctx.read_seed(path)["network-config"])
    (eth,) = config["ethernets"].values()
    assert config["version"] == 2 and eth["match"] == {"macaddress": nic.mac}
    assert eth["addresses"] == [f"{nic.ipv4}/24"]


def test_domain_spec_carries_the_seed_as_a_readonly_cdrom(member: Any, project: Any, template: Any) -> None:
    (vm,) = services.create_vms(
        member, project=project, template=template, name="cd", hold=True, user_data="#!/bin/sh\ntrue\n"
    )
    domain = services.domain_spec(VirtualMachine.objects.get(pk=vm.pk))
    assert domain.context is not None and domain.context.user_data == "#!/bin/sh\ntrue\n"
    assert domain.context_path.endswith(f"/context/{vm.domain_name}.iso")
    (cdrom,) = [d for d in domain.disks if d.device == "cdrom"]
    assert (cdrom.path, cdrom.format, cdrom.bus, cdrom.target, cdrom.readonly) == (
        domain.context_path, "raw", "ide", "hdc", True,
    )  # fmt: skip


def test_agent_writes_the_seed_at_prolog_and_removes_it_when_terminated(
    member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("a")
    key = add_ssh_key(member, name="laptop", public_key=new_public_key("laptop"))
    (vm,) = services.create_vms(member, project=project, template=template, name="seeded")
    settle()
    vm.refresh_from_db()
    assert vm.state == S.RUNNING, vm.last_error
    path = Path(services.domain_spec(vm).context_path)
    files = ctx.read_seed(path)
    assert b"local-hostname: seeded" in files["meta-data"] and key.public_key.encode() in files["meta-data"]

    act(member, vm, "terminate", hard=True)
    settle(schedule=False)
    vm.refresh_from_db()
    assert vm.state == S.DONE and not path.exists()


def test_undeploy_removes_the_seed_and_redeploy_writes_it_again(
    member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    make_sim_host("a")
    (vm,) = services.create_vms(member, project=project, template=template, name="again")
    settle()
    path = Path(services.domain_spec(VirtualMachine.objects.get(pk=vm.pk)).context_path)
    assert path.exists()
    act(member, VirtualMachine.objects.get(pk=vm.pk), "undeploy", hard=True)
    settle(schedule=False)
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.UNDEPLOYED and not path.exists()
    add_ssh_key(member, name="new", public_key=new_public_key("added-later"))
    act(member, VirtualMachine.objects.get(pk=vm.pk), "resume")
    settle()
    assert VirtualMachine.objects.get(pk=vm.pk).state == S.RUNNING
    assert b"added-later" in ctx.read_seed(path)["meta-data"]  # rebuilt with the owner's keys of today


def test_cold_migration_writes_the_seed_for_the_destination(
    member: Any, project: Any, template: Any, make_sim_host: Any, admin_user: Any
) -> None:
    a, b = make_sim_host("a"), make_sim_host("b")
    (vm,) = services.create_vms(member, project=project, template=template, name="mover")
    settle()
    vm.refresh_from_db()
    path = Path(services.domain_spec(vm).context_path)
    path.unlink()  # as on a destination host that never had it
    act(admin_user, vm, "migrate", host_id=(b if vm.host_id == a.pk else a).pk)
    settle()
    vm.refresh_from_db()
    assert vm.state == S.RUNNING and vm.placements.count() == 2
    assert b"local-hostname: mover" in ctx.read_seed(path)["meta-data"]


def test_unwritable_seed_directory_fails_the_prolog_with_the_reason(
    member: Any, project: Any, template: Any, make_sim_host: Any, settings: Any, tmp_path: Path
) -> None:
    make_sim_host("a")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings.NEPHELE_STATE_DIR = blocker  # <file>/context/… cannot be created
    (vm,) = services.create_vms(member, project=project, template=template, name="nowhere")
    settle()
    vm.refresh_from_db()
    assert vm.state == S.PROLOG_FAILURE
    assert "cannot write the context seed" in vm.last_error


# --------------------------------------------------------------------------------------------
# user-data through the service, the API and the form
# --------------------------------------------------------------------------------------------
def test_service_refuses_oversized_user_data_and_creates_nothing(member: Any, project: Any, template: Any) -> None:
    with pytest.raises(InvalidInput) as exc:
        services.create_vms(member, project=project, template=template, name="big", user_data="#!" + "x" * LIMIT)
    assert exc.value.field == "user_data" and f"limit is {LIMIT} bytes" in exc.value.message
    assert not VirtualMachine.objects.exists()


def test_api_takes_user_data_and_names_the_field_when_refused(member_client: Any, project: Any, template: Any) -> None:
    body = {"name": "api-vm", "project": project.pk, "template": template.pk, "hold": True}
    bad = member_client.post("/api/v1/vms/", {**body, "user_data": "#!" + "x" * LIMIT}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "user_data", bad.content
    assert "16 KiB" in str(bad.json())
    assert not VirtualMachine.objects.exists()

    ok = member_client.post("/api/v1/vms/", {**body, "user_data": "#cloud-config\nruncmd: [[ls]]\n"}, format="json")
    assert ok.status_code == 202, ok.content
    pk = ok.json()[0]["id"]
    assert VirtualMachine.objects.get(pk=pk).user_data == "#cloud-config\nruncmd: [[ls]]\n"
    detail = member_client.get(f"/api/v1/vms/{pk}/").json()
    assert detail["user_data"] == "#cloud-config\nruncmd: [[ls]]\n"
    assert detail["context"]["hostname"] == "api-vm" and detail["context"]["user_data_set"] is True
    listed = member_client.get("/api/v1/vms/").json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert "context" not in rows[0]  # the list stays one query per page (no keys per VM)


def test_schema_documents_user_data(member_client: Any) -> None:
    schema = member_client.get("/api/v1/schema/?format=json").json()
    assert "user_data" in schema["components"]["schemas"]["VMCreateRequest"]["properties"]
    assert "context" in schema["components"]["schemas"]["VMDetail"]["properties"]


def browser(user: Any) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_create_form_has_user_data_and_shows_the_limit_error(
    member: Any, project: Any, template: Any, make_sim_host: Any
) -> None:
    c = browser(member)
    page = c.get("/compute/vms/").content.decode()
    assert 'name="user_data"' in page and "<textarea" in page
    resp = c.post(
        "/compute/vms/create/", {"name": "f", "template": template.pk, "count": 1, "user_data": "#!" + "x" * LIMIT}
    )
    assert resp.status_code == 400
    assert f"the limit is {LIMIT} bytes" in resp.content.decode()
    assert not VirtualMachine.objects.exists()
    resp = c.post("/compute/vms/create/", {"name": "f", "template": template.pk, "count": 1, "hold": "on",
                                           "user_data": "#!/bin/sh\necho hi\n"})  # fmt: skip
    assert resp.status_code == 302
    assert VirtualMachine.objects.get().user_data == "#!/bin/sh\necho hi\n"


def test_vm_page_shows_hostname_key_fingerprints_and_whether_user_data_is_set(
    member: Any, viewer: Any, project: Any, template: Any
) -> None:
    key = add_ssh_key(member, name="laptop", public_key=new_public_key("laptop"))
    (vm,) = services.create_vms(member, project=project, template=template, name="Front End", hold=True,
                                user_data="#cloud-config\n{}\n")  # fmt: skip
    (bare,) = services.create_vms(member, project=project, template=template, name="bare", hold=True)
    page = browser(viewer).get(f"/compute/vms/{vm.pk}/").content.decode()
    assert 'data-testid="context-hostname">front-end<' in page
    assert key.fingerprint in page and "laptop" in page
    assert "set (17 bytes)" in page
    assert "#cloud-config" not in page  # the user-data itself is not shown
    page = browser(member).get(f"/compute/vms/{bare.pk}/").content.decode()
    assert 'data-testid="context-user-data"><span class="muted">not set' in page
