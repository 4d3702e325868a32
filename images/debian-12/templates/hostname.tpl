{{ config_get("user.warren.hostname", container.name) }}
