"""Pinned payload fields: served exactly as given until cleared."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

REMOVE_KEY = "_remove"


class OverrideRequest(BaseModel):
    """The control API body: any AxeOS fields, plus `_remove` naming fields to omit."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    remove: list[str] = Field(default_factory=list, alias=REMOVE_KEY)


@dataclass(frozen=True, slots=True)
class Override:
    fields: Mapping[str, Any]
    remove: frozenset[str]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Override:
        """Validate and split a mapping (raises pydantic.ValidationError)."""
        request = OverrideRequest.model_validate(dict(data))
        fields: dict[str, JsonValue] = dict(request.model_extra or {})
        return cls(fields=fields, remove=frozenset(request.remove))

    def apply(self, payload: dict[str, Any], *, only_present: bool = False) -> None:
        """Pin fields in place. `only_present` keeps info-only fields out of other endpoints."""
        for key, value in self.fields.items():
            if not only_present or key in payload:
                payload[key] = value
        for key in self.remove:
            payload.pop(key, None)
