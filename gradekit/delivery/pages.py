"""`pages`: the one Jinja2 environment of the HTML pages (feedback, report) and the helpers that render them.

Templates live in gradekit/delivery/templates/. Autoescape is on: every value a template prints is
HTML-escaped unless it is a `markupsafe.Markup`, which only markup we generate ourselves may be (a macro's
output, never student text). StrictUndefined makes a misspelt variable an error, not an empty string.
"""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup


def _g(value: float) -> str:
    """A number as Python's `:g` writes it (6.0 -> 6, 0.5 -> 0.5)."""
    return f"{value:g}"


environment = Environment(loader=PackageLoader("gradekit.delivery", "templates"), autoescape=True,
                          trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
environment.filters["g"] = _g


def render(template: str, **context: object) -> str:
    """A whole page from templates/<template>."""
    return environment.get_template(template).render(**context)


def macro(template: str, name: str) -> Callable[..., Markup]:
    """A macro of templates/<template> (a file of macros only), callable from Python; it returns Markup, whose
    values were escaped as the template printed them."""
    return getattr(environment.get_template(template).module, name)
