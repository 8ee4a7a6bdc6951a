"""Contextualization: a cloud-init NoCloud seed for each VM, built in Python (no ORM).

The ORM side (``compute.services.vms.context_spec``) gathers what the VM's seed carries into a
``ContextSpec``; the agent writes it at PROLOG with ``build_nocloud_seed`` to
``<NEPHELE_STATE_DIR>/context/<domain>.iso`` and the domain gets it as a read-only CD-ROM.

The seed is an ISO 9660 image with Rock Ridge and Joliet names (so ``meta-data`` keeps its
lower-case, hyphenated name for cloud-init and for the kernel's isofs) and the volume label
``cidata``, holding:

* ``meta-data``: ``instance-id``, ``local-hostname`` and ``public-keys``;
* ``user-data``: our ``#cloud-config`` (``hostname``, ``ssh_authorized_keys``) merged with the
  user's own user-data (see ``render_user_data`` for how);
* ``network-config``: the network manager's cloud-init network config (version 2), only when
  it gave one (without it cloud-init falls back to DHCP on the first NIC).

See docs/contextualization.md.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Mapping
from email.charset import Charset
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.parser import Parser
from pathlib import Path
from typing import Any

import pycdlib
import yaml

from specs import ContextSpec

USER_DATA_MAX_BYTES = 16 * 1024
SEED_LABEL = "cidata"
# seed file -> its ISO 9660 level-1 name (the Rock Ridge / Joliet name is the real one)
_ISO_NAMES = {"meta-data": "METADATA.;1", "user-data": "USERDATA.;1", "network-config": "NETWORKC.;1"}
_HOST_LABEL = re.compile(r"[^a-z0-9-]+")

# cloud-init's own table of what the first line of a user-data part means (longest prefix first)
USER_DATA_TYPES: tuple[tuple[str, str], ...] = (
    ("#cloud-config-archive", "text/cloud-config-archive"),
    ("#cloud-config-jsonp", "text/cloud-config-jsonp"),
    ("#cloud-config", "text/cloud-config"),
    ("#cloud-boothook", "text/cloud-boothook"),
    ("#include-once", "text/x-include-once-url"),
    ("#include", "text/x-include-url"),
    ("#part-handler", "text/part-handler"),
    ("## template: jinja", "text/jinja2"),
    ("#!", "text/x-shellscript"),
)


class UserDataError(ValueError):
    """The user-data cannot go into a seed; the message says why."""


def dns_hostname(name: str, fallback: str) -> str:
    """``name`` as one DNS label (RFC 1123: a-z, 0-9, inner hyphens, ≤ 63), or ``fallback``."""
    label = _HOST_LABEL.sub("-", name.lower()).strip("-")[:63].rstrip("-")
    return label or fallback


def user_data_type(text: str) -> str:
    """The MIME type cloud-init gives ``text`` ('' when blank); raises UserDataError when unknown."""
    head = text.lstrip()
    if not head:
        return ""
    for prefix, mime in USER_DATA_TYPES:
        if head.startswith(prefix):
            return mime
    first = head.split("\n", 1)[0].lower()
    if first.startswith(("content-type:", "mime-version:")):
        return "multipart/mixed"
    raise UserDataError(
        "user_data must start with #cloud-config, a script (#!...), #include, #cloud-boothook, "
        "#part-handler or be a MIME multipart message"
    )


def check_user_data(text: str) -> None:
    """Refuse user-data that is too large or that cloud-init could not read."""
    size = len(text.encode())
    if size > USER_DATA_MAX_BYTES:
        raise UserDataError(f"user_data is {size} bytes; the limit is {USER_DATA_MAX_BYTES} bytes (16 KiB)")
    if user_data_type(text) == "text/cloud-config":
        _cloud_config(text)


def _cloud_config(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserDataError(f"user_data is not valid #cloud-config YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserDataError("user_data #cloud-config must be a YAML mapping (key: value)")
    return data


def _dump(data: Mapping[str, Any]) -> str:
    # no line wrapping: SSH keys stay on one line (the test guest greps them)
    return str(yaml.safe_dump(dict(data), default_flow_style=False, sort_keys=False, width=1 << 20))


def render_meta_data(spec: ContextSpec) -> str:
    """NoCloud ``meta-data``."""
    meta: dict[str, Any] = {"instance-id": spec.instance_id, "local-hostname": spec.hostname}
    if spec.ssh_keys:
        meta["public-keys"] = list(spec.ssh_keys)
    return _dump(meta)


def render_user_data(spec: ContextSpec) -> str:
    """``user-data``: ours (hostname, the owner's keys) with the user's.

    * none: our ``#cloud-config`` alone;
    * a ``#cloud-config``: one merged document: the user's keys win, except
      ``ssh_authorized_keys``, which is the owner's keys followed by the user's own;
    * anything else cloud-init knows (a ``#!`` script, ``#include``, ``#cloud-boothook``, a MIME
      multipart, …): a MIME multipart whose first part is our ``#cloud-config`` and whose next
      part(s) are the user's, unchanged (a multipart's parts are carried over one by one).
    """
    ours: dict[str, Any] = {"hostname": spec.hostname}
    if spec.ssh_keys:
        ours["ssh_authorized_keys"] = list(spec.ssh_keys)
    kind = user_data_type(spec.user_data)
    if kind == "":
        return "#cloud-config\n" + _dump(ours)
    if kind == "text/cloud-config":
        theirs = _cloud_config(spec.user_data)
        merged = dict(ours)
        for key, value in theirs.items():
            if key == "ssh_authorized_keys" and isinstance(value, list):
                merged[key] = list(spec.ssh_keys) + [k for k in value if k not in spec.ssh_keys]
            else:
                merged[key] = value
        return "#cloud-config\n" + _dump(merged)
    outer = MIMEMultipart(boundary="==NEPHELE-SEED==")
    outer.attach(_part("text/cloud-config", "#cloud-config\n" + _dump(ours), "nephele.cfg"))
    if kind == "multipart/mixed":
        message = Parser().parsestr(spec.user_data.lstrip())
        parts = message.get_payload() if message.is_multipart() else [message]
        for sub in parts:
            outer.attach(sub)
    else:
        outer.attach(_part(kind, spec.user_data, "user-data"))
    return outer.as_string()


def _part(mime: str, text: str, filename: str) -> MIMENonMultipart:
    maintype, subtype = mime.split("/", 1)
    part = MIMENonMultipart(maintype, subtype)
    charset = Charset("utf-8")
    charset.body_encoding = None  # type: ignore[assignment]  # 8bit: readable in the seed
    part.set_payload(text, charset=charset)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def seed_files(spec: ContextSpec) -> dict[str, bytes]:
    """The seed's files, by name."""
    check_user_data(spec.user_data)
    files = {"meta-data": render_meta_data(spec).encode(), "user-data": render_user_data(spec).encode()}
    if spec.network_config:
        files["network-config"] = json.dumps(dict(spec.network_config), indent=1, sort_keys=True).encode() + b"\n"
    return files


def read_seed(path: str | Path) -> dict[str, bytes]:
    """The files of a seed ISO, by their Rock Ridge names (to check it, and to skip rewriting it)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out: dict[str, bytes] = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_dir():
                continue
            name = child.rock_ridge.name().decode() if child.rock_ridge else child.file_identifier().decode()
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
            out[name] = buf.getvalue()
        return out
    finally:
        iso.close()


def seed_label(path: str | Path) -> str:
    """The volume label of a seed ISO (cloud-init looks for ``cidata``)."""
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        return bytes(iso.pvd.volume_identifier).decode().strip()
    finally:
        iso.close()


def build_nocloud_seed(spec: ContextSpec, path: str | Path) -> bool:
    """Write the NoCloud seed ISO for ``spec`` at ``path``, atomically (temporary file, rename).

    Idempotent: when ``path`` already holds exactly these files nothing is written and the
    answer is False; True when the seed was (re)written. Raises UserDataError on bad user-data.
    """
    target = Path(path)
    files = seed_files(spec)
    if target.exists():
        try:
            if read_seed(target) == files:
                return False
        except (pycdlib.pycdlibexception.PyCdlibException, OSError):
            pass  # not a readable ISO: write a fresh one over it
    target.parent.mkdir(parents=True, exist_ok=True)
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=SEED_LABEL, joliet=3, rock_ridge="1.09")
    for name, data in files.items():
        iso.add_fp(io.BytesIO(data), len(data), f"/{_ISO_NAMES[name]}", rr_name=name, joliet_path=f"/{name}")
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        iso.write(str(tmp))
        iso.close()
        os.chmod(tmp, 0o644)  # QEMU runs as its own user and must read it
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return True


def remove_seed(path: str | Path) -> None:
    """Delete a VM's seed; a missing one is fine (idempotent)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
