"""Models and versions whose records arrive without a profile: one `no_profile` episode each.

The episode fires when such records first reach stage two and resolves (same id) when the
profile appears; each episode has an id of its own (a model can lose and regain its profile).
The number of episodes is bounded (20,000 version strings must not page 20,000 times): records
of keys beyond it are only counted. An episode whose records stopped coming for `quiet_after`
seconds of event time resolves too (the version was retired), freeing its place.

>>> from monitor.stream.unprofiled import Unprofiled
>>> u = Unprofiled(limit=1)
>>> u.count(("m", "9"), 5, now=100.0); u.count(("x", "1"), 2, now=100.0)
>>> [(a.status, a.model, a.value) for a in u.events(lambda m, v: None, now=101.0)]
[('firing', 'm', 5.0)]
>>> u.overflow
2
>>> [(a.status, a.model) for a in u.events(lambda m, v: object(), now=160.0)]
[('resolved', 'm')]
>>> u.count(("q", "1"), 1, now=200.0)
>>> [a.status for a in u.events(lambda m, v: None, now=201.0)]
['firing']
>>> [(a.status, "no record of this version" in a.message)
...  for a in u.events(lambda m, v: None, now=9000.0)]
[('resolved', True)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from monitor.drift.checks import Severity
from monitor.ingest.records import ModelKey
from monitor.ingest.timestamps import iso
from monitor.stream.alerts import Alert, alert_id


@dataclass
class Episode:
    alert_id: str
    since: float
    records: int = 0
    announced: bool = False  # its `firing` alert has gone out
    last: float = 0.0  # event time of its latest records


class Unprofiled:
    def __init__(self, limit: int, quiet_after: float = 3600.0) -> None:
        self.limit = limit
        self.quiet_after = quiet_after
        self.episodes: dict[ModelKey, Episode] = {}
        self.overflow = 0  # records of keys beyond the limit

    def count(self, key: ModelKey, n: int, *, now: float) -> None:
        episode = self.episodes.get(key)
        if episode is None:
            if len(self.episodes) >= self.limit:
                self.overflow += n
                return
            episode = self.episodes[key] = Episode(
                alert_id((key[0], key[1], "", "no_profile"), now), now)
        episode.records += n
        episode.last = max(episode.last, now)

    def events(self, profiles: Callable[[str, str], Any], *, now: float) -> Iterator[Alert]:
        for key, episode in list(self.episodes.items()):
            profile = profiles(*key)
            if not episode.announced and profile is None:
                episode.announced = True
                yield _alert(key, episode, "firing", now)
            elif profile is not None:
                del self.episodes[key]
                if episode.announced:
                    yield _alert(key, episode, "resolved", now,
                                 str(getattr(profile, "profile_id", "")))
            elif now - episode.last > self.quiet_after:
                del self.episodes[key]
                yield _alert(key, episode, "quiet", now)

    def to_state(self) -> dict[str, Any]:
        return {"overflow": self.overflow,
                "episodes": [[m, v, e.alert_id, e.since, e.records, e.announced, e.last]
                             for (m, v), e in sorted(self.episodes.items())]}

    def restore(self, state: dict[str, Any]) -> None:
        self.overflow = int(state["overflow"])
        self.episodes = {(str(m), str(v)): Episode(str(i), float(since), int(n), bool(a),
                                                   float(last))
                         for m, v, i, since, n, a, last in state["episodes"]}


def _alert(key: ModelKey, episode: Episode, status: str, now: float,
           profile_id: str = "") -> Alert:
    model, version = key
    if status == "firing":
        message = (f"[{model} v{version}] model: records arrive but no profile exists for this "
                   f"model and version: they are counted, not monitored")
    elif status == "quiet":
        status = "resolved"
        message = (f"[{model} v{version}] model: resolved, no record of this version since "
                   f"{iso(episode.last)} ({episode.records} records were not monitored)")
    else:
        message = (f"[{model} v{version}] model: resolved, profile {profile_id} loaded after "
                   f"{episode.records} unmonitored records; monitoring starts")
    check = {"check": "no_profile", "value": float(episode.records), "threshold": None,
             "severity": str(Severity.WARNING)}
    return Alert(episode.alert_id, status, str(Severity.WARNING), None, model, version, "",
                 "no_profile", "no_profile", float(episode.records), None, [check],
                 iso(episode.since), iso(now), iso(episode.since), 0, profile_id, message)
