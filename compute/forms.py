"""Forms for the compute pages; they validate input, the services decide."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms

from portal.forms import GatedForm

from .models import MAX_MEMORY_MB, MAX_VCPU, Cluster, VMTemplate
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
    template = TemplateChoiceField(queryset=VMTemplate.objects.none(), empty_label=None)
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
