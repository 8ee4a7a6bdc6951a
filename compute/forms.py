"""Forms for the compute pages; they validate input, the services decide."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms

from portal.forms import GatedForm

from .models import MAX_DISK_GB, MAX_MEMORY_MB, MAX_VCPU, Cluster, VMTemplate
from .states import RestartPolicy


class TemplateChoiceField(forms.ModelChoiceField):
    """Templates offered with their size, so the choice is informed."""

    def label_from_instance(self, obj: Any) -> str:
        memory = f"{obj.memory_mb / 1024:g} GiB" if obj.memory_mb >= 1024 else f"{obj.memory_mb} MiB"
        return f"{obj.name} — {obj.vcpu} vCPU, {memory}" + (f", {obj.disk_gb} GiB disk" if obj.disk_gb else "")


class CreateVMForm(GatedForm, forms.Form):
    name = forms.CharField(
        max_length=63,
        help_text="Letters, digits, space and . _ ' & < > \" -",
        widget=forms.TextInput(attrs={"placeholder": "web-1", "autocomplete": "off"}),
    )
    source = forms.ChoiceField(
        choices=[("template", "A template"), ("image", "An image of mine (no template needed)")],
        initial="template", widget=forms.RadioSelect, label="Start from", required=False,
    )  # fmt: skip
    template = TemplateChoiceField(queryset=VMTemplate.objects.none(), empty_label=None, required=False)
    image = forms.TypedChoiceField(coerce=int, required=False, label="Image", choices=[],
                                   help_text="Ready OS images you may use; each VM boots a copy")  # fmt: skip
    disk_gb = forms.IntegerField(min_value=0, max_value=MAX_DISK_GB, required=False, label="Disk (GiB)",
                                 help_text="From an image: grow the copy to this size; empty: the image's")  # fmt: skip
    networks = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=[],
                                              widget=forms.CheckboxSelectMultiple, label="Networks",
                                              help_text="One NIC on each (besides the template's)")  # fmt: skip
    security_groups = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=[],
                                                     widget=forms.CheckboxSelectMultiple, label="Security groups",
                                                     help_text="For those NICs; none: the project's default")  # fmt: skip
    count = forms.IntegerField(min_value=1, max_value=100, initial=1, help_text="Names get -0, -1, … when above 1")
    vcpu = forms.IntegerField(
        min_value=1,
        max_value=MAX_VCPU,
        required=False,
        label="vCPU",
        help_text="Empty: the template's",
        widget=forms.NumberInput(attrs={"placeholder": "template"}),
    )
    memory_mb = forms.IntegerField(
        min_value=16,
        max_value=MAX_MEMORY_MB,
        required=False,
        label="Memory (MiB)",
        help_text="Empty: the template's",
        widget=forms.NumberInput(attrs={"placeholder": "template", "step": 16}),
    )
    hold = forms.BooleanField(required=False, label="Create on hold (do not schedule yet)")
    user_data = forms.CharField(
        required=False,
        strip=False,
        label="User-data (cloud-init)",
        help_text="Optional, at most 16 KiB: #cloud-config (merged with the hostname and your SSH keys), "
        "a script (#!…) or MIME multipart",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "placeholder": "#cloud-config"}),
    )

    def __init__(self, *args: Any, user: Any = None, project: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        # smallest first, so the preselected size (the first) is the smallest, never the largest
        field = self.fields["template"]
        field.queryset = field.queryset.select_related("boot_image").order_by(  # type: ignore[attr-defined]
            "vcpu", "memory_mb", "disk_gb", "name", "pk"
        )
        if not self.is_bound and not self.initial.get("template"):
            first = field.queryset.first()  # type: ignore[attr-defined]
            self.initial["template"] = first.pk if first is not None else None
        # what the other managers offer, through their hooks (compute imports none of them)
        from . import hooks

        signed_in = user is not None and user.is_authenticated
        images = [c for part in hooks.bootable_images(user) for c in part] if signed_in else []
        self.fields["image"].choices = [("", "—"), *images]  # type: ignore[attr-defined]
        nics: dict[str, list[tuple[int, str]]] = {"networks": [], "security_groups": []}
        if signed_in and project is not None:
            for part in hooks.nic_choices(user, project):
                for key in nics:
                    nics[key] += part.get(key, [])
        self.fields["networks"].choices = nics["networks"]  # type: ignore[attr-defined]
        self.fields["security_groups"].choices = nics["security_groups"]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        d = super().clean() or {}
        d["source"] = d.get("source") or "template"  # the API's and older forms' default
        if d["source"] == "image":
            if not d.get("image"):
                self.add_error("image", "Choose the image to boot.")
            for field in ("vcpu", "memory_mb"):
                if d.get(field) is None and field not in self.errors:
                    self.add_error(field, "Needed when starting from an image.")
        elif not d.get("template") and "template" not in self.errors:
            self.add_error("template", "Choose a template.")
        return d


class TemplateForm(GatedForm, forms.ModelForm):
    """A new template's fields (shapes only; ``compute.services.templates`` decides and writes)."""

    labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required host labels, one key=value per line",
    )

    class Meta:
        model = VMTemplate
        fields = [
            "name", "description", "vcpu", "memory_mb", "disk_gb", "boot_image", "hypervisor", "cluster",
            "restart_policy", "ha", "graphics",
        ]  # fmt: skip
        widgets = {"description": forms.TextInput()}

    # only the boot images the user may use (see) are offered and accepted; the service checks again
    directory_fields: ClassVar[dict[str, str]] = {
        "cluster": "a placement requirement: any project may pin a template to any cluster"
    }

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, user=user, **kwargs)
        self.fields["restart_policy"].required = False

    def clean_restart_policy(self) -> str:
        return self.cleaned_data.get("restart_policy") or RestartPolicy.NEVER

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data.get("labels", ""))


def parse_labels(text: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for n, line in enumerate((text or "").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(f"line {n}: write labels as key=value")
        labels[key.strip()] = value.strip()
    return labels


class HostForm(GatedForm, forms.Form):
    name = forms.CharField(max_length=63)
    uri = forms.CharField(
        max_length=255,
        label="libvirt URI",
        help_text="qemu:///system, qemu+ssh://root@host/system or test:///path/node.xml",
    )
    hypervisor = forms.ChoiceField(choices=[("qemu", "QEMU/KVM"), ("test", "libvirt test (simulated)")])
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.all(), required=False)
    labels = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="key=value per line")

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data.get("labels", ""))
