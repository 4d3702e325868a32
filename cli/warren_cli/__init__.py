"""The `warren` command-line client of Warren's JSON API (/api/v1)."""
