from django.apps import AppConfig


class NetworkConfig(AppConfig):
    """The network manager: virtual networks, IPAM, public IPs, security groups."""

    name = "network"

    def ready(self) -> None:
        from compute import hooks

        from . import vmnics

        hooks.vms_created.register(vmnics.on_vms_created, order=20)  # after storage's disks
        hooks.nic_specs.register(vmnics.nic_specs)
        hooks.specs_prefetch.register(vmnics.prefetch)
        hooks.network_config.register(vmnics.network_config)
        hooks.vm_done.register(vmnics.on_vm_done, order=20)
        hooks.vm_addresses.register(vmnics.vm_addresses)
        hooks.nics_requested.register(vmnics.on_nics_requested)
        hooks.nic_choices.register(vmnics.nic_choices)
        # the outbox renders port messages from committed rows when it publishes them
        from portal import outbox

        from . import tasks

        outbox.register_renderer("hostagent.plug_port", tasks.render_port)
        outbox.register_renderer("hostagent.hotplug_nic", tasks.render_hotplug)
