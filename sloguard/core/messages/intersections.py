"""Intersectional groups: a segmentation by the cross product of several segment attributes.

`fairness: {attributes: [region, age_band]}` compares the groups ``region=eu & age_band=65+``, ...:
a gap that only one combination suffers (old customers in one region) is invisible in either
attribute alone, where it is averaged with the healthy rest (Buolamwini & Gebru 2018; Fairlearn's
`MetricFrame` with several `sensitive_features` groups the same way). The intersection is one more
segment attribute named ``region&age_band`` whose value per event is ``eu&65+``, so the shards,
the label join and the judge count it like any other; an event missing a component has no value.
"""

from __future__ import annotations

SEPARATOR = "&"


def intersection_name(attributes: tuple[str, ...] | list[str]) -> str:
    """The segment attribute of an intersection: ``region&age_band``."""
    return SEPARATOR.join(attributes)


def components(attribute: str) -> tuple[str, ...]:
    """The attributes an intersection is made of; a plain attribute is its own only component."""
    return tuple(attribute.split(SEPARATOR))


def join_values(columns: list[list[str | None]]) -> list[str | None]:
    """Per event, the components' values joined (``eu&65+``), None when any is absent."""
    return [None if None in values else SEPARATOR.join(values)  # type: ignore[arg-type]
            for values in zip(*columns, strict=True)]
