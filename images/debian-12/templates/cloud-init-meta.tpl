instance-id: {{ container.name }}
local-hostname: {{ config_get("user.warren.hostname", container.name) }}
{{ config_get("user.meta-data", "") }}
