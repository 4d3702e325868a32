"""Reading YAML that people paste: the safe loader, with what a profile
never needs refused before anything is built. Anchors and aliases (a few
hundred bytes of them expand to gigabytes), nesting past MAX_DEPTH
(PyYAML's composer recurses once per level) and documents past MAX_TEXT
are field errors naming the source, and so is YAML that does not parse;
no error quotes more than a few dozen characters of the input.
"""
import yaml

from .errors import ValidationError
from .units import format_size, shown

MAX_TEXT = 64 * 1024  # bytes of YAML; a profile is a few hundred
# Mapping and list levels: a profile has two (its fields, then limits,
# config or images).
MAX_DEPTH = 4
ANCHORS = "uses YAML anchors or aliases (& and *): anchors and aliases are not allowed"


class _Loader(yaml.SafeLoader):
    """The safe loader, except that a number too long for Python or a date
    that does not exist is read as text: the field's own check then says
    what it wants, where PyYAML would raise ValueError."""

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _check_events(text: str, source: str) -> None:
    """Refuse anchors and aliases (a few hundred bytes of them expand to
    gigabytes) and nesting past MAX_DEPTH, from the parser's events, which
    PyYAML produces without recursion and before anything is built."""
    depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.NodeEvent) and event.anchor is not None:
            raise ValidationError({source: [ANCHORS]})
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ValidationError({source: [f"is nested deeper than {MAX_DEPTH} levels; a "
                                                "profile needs two (its fields, then limits, "
                                                "config or images)"]})
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def load(text: str, source: str):
    """The document's data; ValidationError, naming the source, for YAML
    that is too long, unreadable, or uses what a profile has no need for."""
    if len(text) > MAX_TEXT:
        raise ValidationError({source: [f"is longer than {format_size(MAX_TEXT)}; a profile "
                                        "takes a few hundred bytes"]})
    try:
        _check_events(text, source)
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ValidationError({source: [f"is not valid YAML: {shown(error.problem or '', 60)}"
                                        f"{where}"]}) from None
    except yaml.YAMLError as error:  # e.g. characters YAML does not allow
        raise ValidationError({source: [f"is not valid YAML: {shown(str(error), 60)}"]}) from None
