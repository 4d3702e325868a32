{{ config_get("user.vendor-data", properties.default) }}
