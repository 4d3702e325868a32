"""Pagination of API lists: ?page=&per_page=, answered with items, page,
per_page and next (the next page's URL, null on the last)."""
from urllib.parse import urlencode

from flask import request


def _next(args: dict, more: bool) -> str | None:
    if not more:
        return None
    query = {**request.args.to_dict(), "page": args["page"] + 1, "per_page": args["per_page"]}
    return request.path + "?" + urlencode(query)


def page(rows: list, args: dict) -> dict:
    """One page of a list held in memory."""
    start = (args["page"] - 1) * args["per_page"]
    items = rows[start:start + args["per_page"]]
    return {"items": items, "page": args["page"], "per_page": args["per_page"],
            "next": _next(args, len(rows) > start + args["per_page"])}


def page_from(fetch, args: dict) -> dict:
    """One page of a list read with fetch(limit, offset) (one row more than
    a page tells whether there is a next one)."""
    rows = fetch(args["per_page"] + 1, (args["page"] - 1) * args["per_page"])
    return {"items": rows[:args["per_page"]], "page": args["page"], "per_page": args["per_page"],
            "next": _next(args, len(rows) > args["per_page"])}
