"""Label values that can always be exposed: valid UTF-8, at most a set length.

A label value is any text (the Prometheus data model allows every Unicode character), but
it must be encodable as UTF-8: a lone surrogate (``"\\ud800"``, what ``surrogateescape``
decoding or a broken JSON string yields) makes ``prometheus_client``'s encoders raise, and
with them every scrape.  :func:`label_value` is the one place that decides what a value
becomes; :class:`SanitisedRegistry` applies it to everything a registry holds, for the
scrape that found a value no encoder could write.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any, Final, Protocol

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

__all__ = ["DEFAULT_LABEL_VALUE_LIMIT", "SanitisedRegistry", "label_value"]

DEFAULT_LABEL_VALUE_LIMIT: Final = 4096
"""Characters kept of a label value (the attribute value length limit's default)."""
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def label_value(value: object, limit: int = DEFAULT_LABEL_VALUE_LIMIT) -> str:
    """``value`` as text that UTF-8 can encode, cut to ``limit`` characters.

    Lone surrogates become U+FFFD (the Unicode replacement character).  Never raises: a
    value whose ``__str__`` fails becomes ``<TypeName>``.
    """
    try:
        text = value if type(value) is str else str(value)
    except Exception:  # a user object whose __str__ raises
        text = f"<{type(value).__name__}>"
    text = text[:limit]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


class _Collects(Protocol):
    def collect(self) -> Any: ...


class SanitisedRegistry:
    """A view of ``registry`` whose samples' label values pass through :func:`label_value`
    (no cut: the values were cut when they were recorded); what an encoder reads instead
    of the registry."""

    def __init__(self, registry: _Collects) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        """The registry's families, each with its samples' label values made encodable."""
        for family in self._registry.collect():
            yield _sanitised(family)


def _sanitised(family: Metric) -> Metric:
    copied = copy.copy(family)  # the family as it is: no second round of name checks
    copied.documentation = _text(family.documentation)
    copied.samples = [_sample(sample) for sample in family.samples]
    return copied


def _sample(sample: Sample) -> Sample:
    labels = {name: _text(value) for name, value in sample.labels.items()}
    exemplar = sample.exemplar
    if exemplar is not None:
        exemplar = exemplar._replace(
            labels={name: _text(value) for name, value in exemplar.labels.items()}
        )
    return sample._replace(labels=labels, exemplar=exemplar)


def _text(value: object) -> str:
    return label_value(value, limit=2**62)
