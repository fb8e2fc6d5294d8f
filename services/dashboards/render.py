"""Templates -> dashboard JSON that Grafana's file provisioning will accept.

Every `{{ value }}` in a template is JSON-encoded by the environment itself
(`finalize`), so a hostname full of quotes, braces or newlines stays a string;
the only values passed through untouched are the outputs of the templates' own
macros. The rendered text is parsed and validated (unique integer panel ids,
datasource `{type, uid}` on every panel and target, uid and title rules) before
anyone writes it. The revision is a hash of the content: a changed template
or a new service version gives a new revision, and the files are rewritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, Undefined
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, model_validator

from services.dashboards import naming
from services.dashboards.promql import FAMILIES, Families, device_queries, overview_queries
from services.dashboards.settings import UID_PATTERN
from shared.subjects import OVERVIEW_KEY

TEMPLATES = Path(__file__).parent / "templates"
REVISION_TAG_PREFIX = "pluto-rev-"
BASE_TAGS = ("pluto",)
CACHE_SIZE = 20_000
TEMP_STEPS = (  # a colour step every 10 °C
    ("blue", None),
    ("green", 30),
    ("light-green", 40),
    ("yellow", 50),
    ("orange", 60),
    ("red", 70),
    ("dark-red", 80),
)


class RenderError(ValueError):
    """A template produced something Grafana must not see."""


# -- validation models: what provisioning and public dashboards need ---------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")


class DatasourceRef(_Loose):
    type: str = Field(min_length=1)
    uid: str = Field(pattern=UID_PATTERN)


class Target(_Loose):
    refId: str = Field(min_length=1)
    datasource: DatasourceRef
    expr: str = Field(min_length=1)


class GridPos(_Loose):
    h: StrictInt = Field(ge=1)
    w: StrictInt = Field(ge=1, le=24)
    x: StrictInt = Field(ge=0, le=23)
    y: StrictInt = Field(ge=0)

    @model_validator(mode="after")
    def _inside_grid(self) -> GridPos:
        if self.x + self.w > 24:
            raise ValueError(f"panel overflows the 24-column grid: x={self.x} w={self.w}")
        return self


class Panel(_Loose):
    id: StrictInt = Field(ge=1)
    type: str = Field(min_length=1)
    title: str = Field(min_length=1)
    gridPos: GridPos
    datasource: DatasourceRef
    targets: list[Target] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ref_ids(self) -> Panel:
        refs = [t.refId for t in self.targets]
        if len(refs) != len(set(refs)):
            raise ValueError(f"panel {self.id}: duplicate refId in {refs}")
        return self


class DashboardDoc(_Loose):
    uid: str = Field(pattern=UID_PATTERN)
    title: str = Field(min_length=1)
    schemaVersion: StrictInt
    tags: list[str]
    panels: list[Panel] = Field(min_length=1)
    id: None = None

    @model_validator(mode="after")
    def _checks(self) -> DashboardDoc:
        if not self.title.strip():
            raise ValueError("title is blank")
        ids = [p.id for p in self.panels]
        if len(ids) != len(set(ids)):
            raise ValueError(f"duplicate panel ids in {ids}")
        return self


# -- rendering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderedDashboard:
    key: str  # device id or OVERVIEW_KEY
    uid: str
    title: str
    revision: str
    text: str  # what goes into the file
    exprs: tuple[str, ...]  # every PromQL expression in it


def _json_value(value: Any) -> Markup:
    """`finalize` hook: JSON-encode every value a template prints, macros' output excepted."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return Markup(json.dumps(value, ensure_ascii=False))


def revision_of(tags: list[str]) -> str | None:
    for tag in tags:
        if tag.startswith(REVISION_TAG_PREFIX):
            return tag[len(REVISION_TAG_PREFIX) :]
    return None


class Renderer:
    def __init__(
        self,
        datasource_uid: str,
        families: Families = FAMILIES,
        templates_dir: Path = TEMPLATES,
    ) -> None:
        self._datasource = {"type": "prometheus", "uid": datasource_uid}
        self._cache: dict[tuple[str, str], RenderedDashboard] = {}
        self._families = families
        self._env = Environment(
            loader=FileSystemLoader(templates_dir),
            autoescape=True,  # with finalize: every printed value becomes JSON, nothing else
            finalize=_json_value,
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )

    def device(self, device_id: str, title: str) -> RenderedDashboard:
        """Rendered once per (device, title): reconcile asks again for every device, often."""
        key = (device_id, title)
        found = self._cache.get(key)
        if found is None:
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            found = self._cache[key] = self._render_device(device_id, title)
        return found

    def _render_device(self, device_id: str, title: str) -> RenderedDashboard:
        return self._render(
            "device.json.j2",
            key=device_id,
            uid=naming.device_uid(device_id),
            title=title,
            tags=[*BASE_TAGS, "pluto-device"],
            description=f"Pluto device {device_id}",
            q=device_queries(device_id, self._families),
        )

    def overview(self) -> RenderedDashboard:
        return self._render(
            "overview.json.j2",
            key=OVERVIEW_KEY,
            uid=naming.OVERVIEW_UID,
            title=naming.OVERVIEW_TITLE,
            tags=[*BASE_TAGS, "pluto-overview"],
            description="Pluto fleet overview",
            q=overview_queries(self._families),
            legend={
                "hostname": "{{hostname}}",
                "firmware": "{{" + self._families.firmware_label + "}}",
                "pool": "{{" + self._families.pool_label + "}}",
            },
        )

    def _render(self, template: str, *, key: str, **context: Any) -> RenderedDashboard:
        uid = context["uid"]
        where = f"template {template} for dashboard {uid}"
        try:
            text = self._env.get_template(template).render(
                ds=self._datasource, temp_steps=TEMP_STEPS, **context
            )
        except TemplateError as exc:
            raise RenderError(f"{where}: {exc}") from exc
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"{where}: rendered text is not JSON: {exc}") from exc
        try:
            checked = DashboardDoc.model_validate(doc)
        except ValidationError as exc:
            raise RenderError(f"{where}: invalid dashboard: {exc}") from exc
        if checked.uid != uid or checked.title != context["title"]:
            raise RenderError(f"{where}: uid or title differ from what was asked")
        datasources = [p.datasource for p in checked.panels] + [
            t.datasource for p in checked.panels for t in p.targets
        ]
        if any(d.uid != self._datasource["uid"] for d in datasources):
            raise RenderError(f"{where}: a panel or target names another datasource")
        revision = hashlib.sha256(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[
            :12
        ]
        doc["tags"] = [*doc["tags"], REVISION_TAG_PREFIX + revision]
        return RenderedDashboard(
            key=key,
            uid=uid,
            title=checked.title,
            revision=revision,
            text=json.dumps(doc, ensure_ascii=False) + "\n",  # the C encoder: indent costs 3x
            exprs=tuple(t.expr for p in checked.panels for t in p.targets),
        )
