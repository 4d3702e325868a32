"""What every `warren` command shares: the client from the stored login,
API errors turned into messages and exit codes, tables and --json."""
import json
import os

import click

from . import config
from .client import ApiError, Client, Unreachable


def exit_code(status: int) -> int:
    if status in (401, 403):
        return 3
    if status == 404:
        return 4
    if status == 422:
        return 5
    if status in (409, 412, 428):
        return 6
    if status >= 500 or status == 429:
        return 7
    return 1


class Failed(click.ClickException):
    """An error with its own exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.exit_code = code


def fail_on_errors(function):
    """Turn API errors into readable messages and the documented exit codes."""
    def wrapped(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ApiError as error:
            lines = [f"{error.message} (HTTP {error.status})"]
            lines += [f"  {field}: {message}" for field, messages in error.fields.items()
                      for message in messages]
            raise Failed("\n".join(lines), exit_code(error.status)) from None
        except Unreachable as error:
            raise Failed(str(error), 7) from None
    wrapped.__name__, wrapped.__doc__ = function.__name__, function.__doc__
    return wrapped


def client() -> Client:
    url, token = os.environ.get("WARREN_URL"), os.environ.get("WARREN_TOKEN")
    stored = config.load() or {}
    url, token = url or stored.get("url"), token or stored.get("token")
    if not url or not token:
        raise Failed("Not logged in: run `warren login URL` (or set WARREN_URL and WARREN_TOKEN).", 3)
    return Client(url, token)


def table(rows: list[dict], columns: list[str]) -> None:
    """Aligned columns for people."""
    if not rows:
        click.echo("(none)")
        return
    cells = [[("" if row.get(column) is None else str(row.get(column))) for column in columns]
             for row in rows]
    widths = [max(len(column), *(len(line[n]) for line in cells)) for n, column in enumerate(columns)]
    click.echo("  ".join(column.upper().ljust(widths[n]) for n, column in enumerate(columns)).rstrip())
    for line in cells:
        click.echo("  ".join(cell.ljust(widths[n]) for n, cell in enumerate(line)).rstrip())


def show(data, as_json: bool, columns: list[str] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif isinstance(data, list):
        table(data, columns)
    else:
        for key in columns or sorted(data):
            value = data.get(key)
            click.echo(f"{key}: {'' if value is None else value}")


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
