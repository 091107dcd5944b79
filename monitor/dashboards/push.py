"""`drift-monitor dashboards push`: the shipped dashboards (and optionally the datasource) into a
Grafana server through its HTTP API (grafana-client), overwriting by uid."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import niquests
import yaml
from grafana_client import GrafanaApi
from grafana_client.client import (
    GrafanaClientError,
    GrafanaException,
    GrafanaServerError,
    GrafanaUnauthorizedError,
)

from monitor.dashboards.files import (
    DASHBOARD_DIR,
    DATASOURCE_PROVISIONING,
    DATASOURCE_UID,
    load_dashboards,
)
from monitor.errors import InputError, ServiceError, UsageError

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")

def grafana_token(token_file: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The Grafana token: the content of `token_file` (whitespace around it dropped) or the
    ``GRAFANA_TOKEN`` environment variable, never both; None when neither is given. Never a
    command-line value, which `ps` and shell history would keep.

    >>> grafana_token(None, {"GRAFANA_TOKEN": " glsa_x "}), grafana_token(None, {})
    ('glsa_x', None)
    """
    environ = os.environ if environ is None else environ
    value = environ.get("GRAFANA_TOKEN", "").strip()
    if token_file is None:
        return value or None
    if value:
        raise UsageError(f"set GRAFANA_TOKEN or --token-file, not both (--token-file {token_file})")
    try:
        content = Path(token_file).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise InputError(f"cannot read the Grafana token file ({token_file}: {reason})") from None
    if not content:
        raise InputError(f"the Grafana token file is empty ({token_file})")
    return content


def datasource_definition(
    directory: Path | str = DASHBOARD_DIR, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The provisioned datasource as a Grafana API payload, ``$VAR``s taken from `environ`."""
    environ = os.environ if environ is None else environ
    path = Path(directory) / DATASOURCE_PROVISIONING
    try:
        provisioning = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"cannot read datasource provisioning ({path}): {error}") from None
    source = next(d for d in provisioning["datasources"] if d.get("uid") == DATASOURCE_UID)

    def expand(item: Any) -> Any:
        if isinstance(item, dict):
            return {key: expand(value) for key, value in item.items()}
        if isinstance(item, str):
            return _VARIABLE.sub(lambda m: _environment(environ, m[1] or m[2]), item)
        return item

    keys = ("name", "uid", "type", "access", "url", "isDefault", "jsonData", "secureJsonData")
    return {key: expand(source[key]) for key in keys if key in source}


_ENVIRONMENT_DEFAULTS = {"INFLUX_URL": "http://influxdb:8086"}


def _environment(environ: Mapping[str, str], name: str) -> str:
    if name in environ:
        return environ[name]
    if name in _ENVIRONMENT_DEFAULTS:
        return _ENVIRONMENT_DEFAULTS[name]
    raise UsageError(f"the datasource needs an environment variable that is not set ({name})")


def push_dashboards(
    url: str,
    token: str | None = None,
    *,
    include_datasource: bool = False,
    directory: Path | str = DASHBOARD_DIR,
    folder_uid: str | None = None,
    timeout_seconds: float = 10.0,
) -> list[str]:
    """Create or overwrite every dashboard of `directory` in Grafana; return their uids.

    With `include_datasource`, the InfluxDB datasource is created or updated first (by
    uid), from the provisioning file and the ``INFLUX_URL`` / ``INFLUX_TOKEN`` environment.
    """
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise UsageError(f"the Grafana URL needs http:// or https:// and a host ({url})")
    dashboards = load_dashboards(directory)
    datasource = datasource_definition(directory) if include_datasource else None
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout_seconds)
    pushed = []
    try:
        if datasource is not None:
            _upsert_datasource(api, datasource)
        for dashboard in dashboards:
            payload: dict[str, Any] = {
                "dashboard": {**dashboard, "id": None},
                "overwrite": True,
                "message": "pushed by drift-monitor",
            }
            if folder_uid is not None:
                payload["folderUid"] = folder_uid
            api.dashboard.update_dashboard(payload)
            pushed.append(dashboard["uid"])
    except GrafanaUnauthorizedError:
        raise ServiceError(f"Grafana rejected the token (401) at {url}") from None
    except (GrafanaClientError, GrafanaServerError) as error:
        raise ServiceError(
            f"Grafana at {url} answered HTTP {error.status_code}{_detail(error)}"
        ) from None
    except (GrafanaException, niquests.exceptions.RequestException, OSError) as error:
        raise ServiceError(f"cannot reach Grafana at {url}: {_network_reason(error)}") from None
    return pushed


def _upsert_datasource(api: GrafanaApi, datasource: dict[str, Any]) -> None:
    try:
        api.datasource.get_datasource_by_uid(datasource["uid"])
    except GrafanaClientError as error:
        if error.status_code != 404:
            raise
        api.datasource.create_datasource(datasource)
    else:
        api.datasource.update_datasource_by_uid(datasource["uid"], datasource)


def _detail(error: GrafanaException) -> str:
    response = error.response
    if isinstance(response, Mapping):
        response = response.get("message", "")
    text = _one_line(str(response or ""))[:200]
    return f": {text}" if text != "no reason given" else ""


def _network_reason(error: BaseException) -> str:
    """The useful part of a connection error ("[Errno 111] Connection refused")."""
    text = _one_line(str(error))
    for pattern in (r"\[Errno [^\]]*\][^'\")(]*", r"Failed to resolve '[^']*'", r"timed out"):
        found = re.search(pattern, text)
        if found:
            return found[0].strip()
    return text


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "no reason given"
