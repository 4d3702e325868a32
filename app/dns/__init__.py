"""The only package that talks DNS (through dnspython and rndc):

- zone.py: the zone's server, signed updates (RFC 2136 with TSIG),
  queries and zone transfers;
- names.py: instance names (A, AAAA) and Warren's owner markers;
- records.py: a member's own records, kept equal to what Warren's rows say;
- keys.py: member and ACME TSIG keys and the update-policy that confines them;
- dnssec.py: the DS record of the signed zone, for its parent;
- public.py: lookups in the public DNS (members' own domains), through
  the configured recursive resolvers;
- files.py: named's state files and `rndc sync`, for Warren's own backup.
"""
from .names import (legacy_names, marker_name, move_legacy_marker, owned_names, owner_text,
                    publish_address, remove_name)
from .zone import Zone, lookup, read_key_file, transfer, zone_from_settings

__all__ = ["Zone", "legacy_names", "lookup", "marker_name", "move_legacy_marker", "owned_names",
           "owner_text", "publish_address", "read_key_file", "remove_name", "transfer",
           "zone_from_settings"]
