"""Device profiles and custom metrics (operator): what devices' SenML names mean, at run time.

Running ingesters pick changes up within ZHONGDU_INGEST_CONFIG_REFRESH_S seconds, no restart.
The documents are those of `zhongdu devices profile` and docs/device-profiles.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from zhongdu import storage
from zhongdu.api._deps import ConnDep, OperatorDep
from zhongdu.api._schemas import ErrorOut
from zhongdu.ingest import METRICS
from zhongdu.ingest._profiles import CustomMetric, Profile, ProfileError

router = APIRouter(tags=["device profiles"])

_PROFILE_ID = Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", description="profile id")
_METRIC = Path(pattern=r"^[a-z][a-z0-9_-]{0,62}$", description="custom metric name")
_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorOut, "description": "the document cannot be used; `detail` says why"}
}


class NameRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="resolved SenML name (bn + n), matched exactly")
    metric: str
    unit: str | None = Field(None, description="only records in this unit (names told apart by unit)")
    device: str | None = Field(None, description="the device the record belongs to (default: the topic's)")


class PrefixRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prefix: str = Field(description="cut off a resolved name; the rest is the metric (through aliases)")
    device: str | None = None


class ProfileIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "description": "1-wire sensors named by URN",
                    "kinds": ["onewire"],
                    "names": [
                        {"name": "urn:dev:ow:10e2073a01080063", "unit": "Cel", "metric": "temperature"}
                    ],
                    "prefixes": ["urn:dev:ow:10e2073a01080063:"],
                    "aliases": {"temp": "temperature"},
                }
            ]
        },
    )
    description: str = ""
    devices: list[str] = Field(default_factory=list, description="device ids this profile applies to")
    kinds: list[str] = Field(default_factory=list, description="device kinds this profile applies to")
    names: list[NameRuleIn] = Field(default_factory=list)
    prefixes: list[str | PrefixRuleIn] = Field(default_factory=list)
    aliases: dict[str, str] = Field(default_factory=dict, description="SenML name part -> metric")


class ProfileOut(ProfileIn):
    model_config = ConfigDict(extra="allow")
    profile_id: str
    updated_at: str | None = None


class ProfileListOut(BaseModel):
    items: list[ProfileOut]


class CustomMetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value_type: Literal["number", "boolean", "text", "data"]
    unit: str | None = Field(None, description="SenML unit (numbers only)")
    min: float | None = None
    max: float | None = None
    description: str = ""


class CustomMetricOut(CustomMetricIn):
    metric: str


class CustomMetricListOut(BaseModel):
    items: list[CustomMetricOut]


def _known_metrics(conn: Any) -> set[str]:
    return set(METRICS) | {m["metric"] for m in storage.profiles.custom_metrics(conn)}


@router.get(
    "/v1/device-profiles",
    response_model=ProfileListOut,
    response_model_exclude_none=True,
    summary="List device profiles (operator)",
)
def list_profiles(conn: ConnDep, _operator: OperatorDep) -> dict[str, Any]:
    return {"items": storage.profiles.profiles(conn)}


@router.put(
    "/v1/device-profiles/{profile_id}",
    response_model=ProfileOut,
    response_model_exclude_none=True,
    responses=_ERRORS,
    summary="Create or replace a device profile (operator)",
)
def put_profile(
    conn: ConnDep, _operator: OperatorDep, profile_id: Annotated[str, _PROFILE_ID], body: ProfileIn
) -> dict[str, Any]:
    document = {"profile_id": profile_id, **body.model_dump(exclude_none=True)}
    document["names"] = [{k: v for k, v in r.items() if v is not None} for r in document["names"]]
    try:
        profile = Profile.from_json(document, _known_metrics(conn))
    except ProfileError as exc:
        raise HTTPException(422, str(exc)) from exc
    stored = profile.as_json()
    storage.profiles.put_profile(conn, stored)
    return stored


@router.delete(
    "/v1/device-profiles/{profile_id}",
    status_code=204,
    responses={404: {"model": ErrorOut, "description": "no such profile"}},
    summary="Delete a device profile (operator)",
)
def delete_profile(
    conn: ConnDep, _operator: OperatorDep, profile_id: Annotated[str, _PROFILE_ID]
) -> Response:
    if not storage.profiles.delete_profile(conn, profile_id):
        raise HTTPException(404, f"no device profile {profile_id}")
    return Response(status_code=204)


@router.get(
    "/v1/custom-metrics", response_model=CustomMetricListOut, summary="List custom metrics (operator)"
)
def list_metrics(conn: ConnDep, _operator: OperatorDep) -> dict[str, Any]:
    return {"items": storage.profiles.custom_metrics(conn)}


@router.put(
    "/v1/custom-metrics/{metric}",
    response_model=CustomMetricOut,
    responses=_ERRORS,
    summary="Create or replace a custom metric (operator)",
)
def put_metric(
    conn: ConnDep, _operator: OperatorDep, metric: Annotated[str, _METRIC], body: CustomMetricIn
) -> dict[str, Any]:
    try:
        custom = CustomMetric(metric=metric, **body.model_dump())
    except ProfileError as exc:
        raise HTTPException(422, str(exc)) from exc
    storage.profiles.put_custom_metric(conn, custom.as_json())
    return custom.as_json()


@router.delete(
    "/v1/custom-metrics/{metric}",
    status_code=204,
    responses={404: {"model": ErrorOut, "description": "no such custom metric"}},
    summary="Delete a custom metric (operator); its stored readings stay",
)
def delete_metric(conn: ConnDep, _operator: OperatorDep, metric: Annotated[str, _METRIC]) -> Response:
    if not storage.profiles.delete_custom_metric(conn, metric):
        raise HTTPException(404, f"no custom metric {metric}")
    return Response(status_code=204)
