"""The only package that talks to LXD (through pylxd), one module per part
of LXD: where LXD is and its clients (backend: a unix socket or a
cluster's HTTPS address), the error translation (client), the host's pool,
bridge, images and resources (host), instances (instances), projects and
their profiles (projects), usage figures (metrics), the bridge's port
forwards (forwards), instance consoles (console), and cluster maintenance
(cluster: evacuate, restore, move).

pylxd's exceptions become Warren's LxdError / BackendUnavailable / NotFound /
Conflict here, so callers never see the library. Every call waits for its
operation to finish (wait=True): nothing returns while LXD is still working.
Callers use the package (`lxd.create_instance(...)`), not its modules.
"""
from .backups import (OPTIMIZED_DRIVERS, create_backup, delete_backup, export_backup,
                      import_backup, pool_driver)
from .backend import Backend, Member, backend
from .cluster import (evacuate_member, instances_on, locations, move_instance,
                      restore_member)
from .client import IMAGE_CACHE_SECONDS, cached, forget_cached, server_info, translated
from .console import Console, console_operations, open_console
from .forwards import (delete_forward, forward_addresses, forward_ports, port_entry,
                       set_forward_ports)
from .host import (DRIVERS, bridge_config, bridge_port_ipv6, bridge_ports, cluster_tunnel,
                   ensure_default_profile, ensure_network, ensure_storage_pool, host_resources,
                   image_aliases, image_properties, instance_ports, instance_types, network_config,
                   network_range)
from .idmaps import lock_path as idmap_lock_path
from .instances import (UNREACHABLE, create_instance, delete_instance, execute, get_instance,
                        instance_configs, instance_devices, instance_states, ipv4_address, location, push_file,
                        rename_instance, set_config, set_device, set_power, start_instance)
from .metrics import cpu_seconds, instance_usage
from .snapshots import delete_snapshot, list_snapshots, restore_snapshot, take_snapshot
from .projects import (delete_profile, delete_project, ensure_profile, ensure_project,
                       profile_names, project_exists, project_names)

__all__ = [
    "OPTIMIZED_DRIVERS", "create_backup", "delete_backup", "export_backup", "import_backup",
    "pool_driver",
    "Backend", "Member", "backend",
    "evacuate_member", "instances_on", "locations", "move_instance", "restore_member",
    "IMAGE_CACHE_SECONDS", "cached", "forget_cached", "server_info", "translated",
    "Console", "console_operations", "open_console",
    "delete_forward", "forward_addresses", "forward_ports", "port_entry", "set_forward_ports",
    "DRIVERS", "bridge_config", "bridge_port_ipv6", "bridge_ports", "cluster_tunnel",
    "ensure_default_profile",
    "ensure_network", "ensure_storage_pool", "host_resources", "image_aliases", "image_properties",
    "instance_ports", "instance_types", "network_config", "network_range",
    "UNREACHABLE", "create_instance", "idmap_lock_path", "delete_instance", "execute", "get_instance", "instance_configs",
    "instance_devices", "instance_states", "ipv4_address", "location", "push_file", "rename_instance",
    "set_config", "set_device", "set_power", "start_instance",
    "cpu_seconds", "instance_usage",
    "delete_snapshot", "list_snapshots", "restore_snapshot", "take_snapshot",
    "delete_profile", "delete_project", "ensure_profile", "ensure_project", "profile_names",
    "project_exists", "project_names",
]
