"""The `drift-monitor` command. Errors print one line (`error: ...`) and exit 2; no tracebacks."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.errors import InputError, MonitorError, UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text}")
    return value


def _rate(text: str) -> float:
    value = _positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="drift-monitor", description="Streaming drift monitoring for ML models "
                     "whose predictions flow through Kafka.")
    parser.add_argument("--version", action="version", version=f"drift-monitor {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    profile = sub.add_parser("profile", help="training profiles")
    psub = profile.add_subparsers(dest="profile_command", required=True, parser_class=_Parser)
    build = psub.add_parser("build", help="build a training profile from CSV, Parquet or JSONL")
    build.add_argument("data", help="training data: .csv, .parquet or .jsonl (prediction logs)")
    build.add_argument("--model", required=True, help="model name the profile is for")
    build.add_argument("--version", dest="model_version", required=True, help="model version")
    build.add_argument("-o", "--output", help="profile file (default: <model>-<version>.json)")
    build.add_argument("--schema", help="YAML or JSON file mapping feature -> kind, overriding inference")
    build.add_argument("--prediction", action="append", default=[], metavar="COL",
                       help="CSV/Parquet column holding a model output (repeatable)")
    build.add_argument("--window-size", type=_positive_int, default=1000,
                       help="expected records per window, for threshold calibration (default 1000)")
    build.add_argument("--false-alarm-rate", type=_rate, default=1e-3,
                       help="false alarms per window per feature under no drift (default 0.001)")
    build.add_argument("--max-categories", type=_positive_int, default=1000,
                       help="training categories kept per categorical feature (default 1000)")
    build.add_argument("--calibration-windows", type=_positive_int, default=200,
                       help="resampled windows used to calibrate thresholds (default 200)")
    build.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    check = sub.add_parser("check", help="compare one batch of data with a profile")
    check.add_argument("data", help="batch to check: .csv, .parquet or .jsonl")
    check.add_argument("--profile", required=True, help="profile JSON file")
    check.add_argument("--format", choices=("table", "json"), default="table",
                       help="output format (default table)")
    check.add_argument("--prediction", action="append", default=[], metavar="COL",
                       help="CSV/Parquet column holding a model output (repeatable)")
    check.add_argument("--thresholds", help="YAML/JSON threshold overrides: feature -> check -> value")

    replay = sub.add_parser("replay", help="run the streaming engine over a JSONL log file")
    replay.add_argument("logs", help="JSONL prediction logs")
    replay.add_argument("--profiles", required=True, help="directory of profile JSON files")
    replay.add_argument("--window", type=_positive_float, default=60.0,
                        help="window length in seconds (default 60)")
    replay.add_argument("--grace", type=float, default=0.0,
                        help="seconds a window stays open for late records (default 0)")
    replay.add_argument("--min-records", type=_positive_int, default=200,
                        help="smaller windows are carried into the next one (default 200)")
    replay.add_argument("--thresholds", help="YAML/JSON overrides: model -> feature -> check -> value")
    replay.add_argument("--reports", help="also write every window report as JSON lines to this file")

    sub.add_parser("worker", help="run the Kafka worker (configured by DRIFT_MONITOR_* variables)")

    alerts = sub.add_parser("alerts", help="alerts on the Kafka alert topic")
    asub = alerts.add_subparsers(dest="alerts_command", required=True, parser_class=_Parser)
    tail = asub.add_parser("tail", help="print alerts as they arrive")
    tail.add_argument("--json", action="store_true", help="raw JSON lines")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest alert")
    tail.add_argument("--timeout", type=_positive_float, help="stop after this many idle seconds")
    forward = asub.add_parser("forward", help="post the alert topic to Prometheus Alertmanager "
                              "(API v2), at least once; runs until stopped")
    forward.add_argument("--alertmanager", required=True, metavar="URL",
                         help="Alertmanager base URL, e.g. http://localhost:9093")
    forward.add_argument("--group", help="Kafka consumer group (default: "
                         "DRIFT_MONITOR_GROUP + '-alertmanager')")
    forward.add_argument("--expire-after", type=_positive_float, default=3600.0, metavar="SECONDS",
                         help="an active alert ends this long after the forwarder last refreshed "
                         "it; refreshed every quarter of it (default 3600)")

    dashboards = sub.add_parser("dashboards", help="Grafana dashboards")
    dsub = dashboards.add_subparsers(dest="dashboards_command", required=True, parser_class=_Parser)
    push = dsub.add_parser("push", help="upload the dashboards to Grafana")
    push.add_argument("--url", required=True, help="Grafana URL, e.g. http://localhost:3000")
    push.add_argument("--token-file", metavar="FILE", help="file holding the Grafana service "
                      "account token (default: the GRAFANA_TOKEN environment variable)")
    push.add_argument("--token", help=argparse.SUPPRESS)  # refused: it would show in `ps`
    push.add_argument("--datasource", action="store_true", help="also create/update the datasource")

    demo = sub.add_parser("demo", help="the demo stream")
    demosub = demo.add_subparsers(dest="demo_command", required=True, parser_class=_Parser)
    produce = demosub.add_parser("produce", help="produce the demo model's prediction logs to "
                                 "DRIFT_MONITOR_PREDICTIONS_TOPIC, with drift part way")
    produce.add_argument("--windows", type=_positive_int, default=16,
                         help="5-second windows to produce (default 16)")
    produce.add_argument("--rate", type=_positive_int, default=400,
                         help="records per second (default 400)")

    report = sub.add_parser("report", help="self-contained HTML drift report from JSONL logs")
    report.add_argument("logs", help="JSONL prediction logs")
    report.add_argument("--profiles", required=True, help="directory of profile JSON files")
    report.add_argument("-o", "--output", default="report.html", help="HTML file (default report.html)")
    report.add_argument("--window", type=_positive_float, default=60.0, help="window seconds")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(_dispatch(args) or 0)
    except MonitorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # stdout closed early (`| head`): nothing more to say
        _silence_stdout()
        return 0


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush cannot fail again."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _emit(text: str) -> None:
    """Print `text`; a reader that has gone away (`| head`) is not an error."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "profile":
        return _profile_build(args)
    if args.command == "check":
        return _check(args)
    if args.command == "replay":
        return _replay(args)
    if args.command == "worker":
        from monitor.service.settings import Settings
        from monitor.service.worker import run_worker

        return run_worker(Settings.from_env())
    if args.command == "alerts" and args.alerts_command == "forward":
        from monitor.service.alertmanager import forward_alerts

        return forward_alerts(args.alertmanager, group=args.group, expire_after=args.expire_after)
    if args.command == "alerts":
        from monitor.cli.alerts import tail_alerts

        return tail_alerts(as_json=args.json, from_beginning=args.from_beginning,
                           idle_timeout=args.timeout)
    if args.command == "dashboards":
        from monitor.dashboards.push import grafana_token, push_dashboards

        if args.token is not None:
            raise UsageError("a token on the command line shows in `ps` and shell history: set "
                             "GRAFANA_TOKEN or use --token-file FILE (--token)")
        token = grafana_token(args.token_file)
        for uid in push_dashboards(args.url, token, include_datasource=args.datasource):
            print(f"pushed {uid}")
        return 0
    if args.command == "demo":
        from monitor.demo.run import produce_main

        return produce_main(args.windows, args.rate)
    if args.command == "report":
        from monitor.outputs.html_report import write_report

        path = write_report(args.logs, args.profiles, args.output, window_seconds=args.window)
        print(f"wrote {path}")
        return 0
    raise UsageError(f"unknown command {args.command!r}")


def _profile_build(args: argparse.Namespace) -> int:
    from monitor.ingest.schema import load_schema_file
    from monitor.profile.build import BuildOptions, build_profile, stderr_progress

    opts = BuildOptions(
        model=args.model, version=args.model_version, predictions=tuple(args.prediction),
        schema=load_schema_file(args.schema) if args.schema else {},
        window_size=args.window_size, false_alarm_rate=args.false_alarm_rate,
        max_categories=args.max_categories, calibration_windows=args.calibration_windows,
        seed=args.seed)
    profile = build_profile(args.data, opts, stderr_progress())
    out = Path(args.output or f"{args.model}-{args.model_version}.json")
    try:
        profile.save(out)
    except OSError as exc:
        raise InputError(f"cannot write profile ({out}): {exc.strerror}") from None
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    kinds = ", ".join(f"{n}:{k}" for n, k in sorted(profile.schema.items()))
    print(f"wrote {out} ({profile.profile_id}, {profile.source['rows']} rows; {kinds})")
    others = profile.source.get("other_model_records")
    if others:
        print(f"note: {others:,} records of other models or versions in {Path(args.data).name} "
              f"were left out (the profile is for {args.model} v{args.model_version})",
              file=sys.stderr)
    return 0


def load_overrides(path: str | None, depth: int) -> dict[str, Any]:
    """Threshold overrides from YAML/JSON: `feature -> check -> number` (depth 2), or with the
    model first (depth 3: `model -> feature -> check -> number`; `*` matches any)."""
    if not path:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"thresholds file not found ({path})") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"cannot read thresholds file {path}: {str(exc).splitlines()[0]}") from None
    shape = " -> ".join(["model", "feature", "check"][3 - depth:]) + " -> number"
    if not _nested_numbers(data, depth):
        raise InputError(f"thresholds file must map {shape} ({path})")
    return data


def _nested_numbers(data: Any, depth: int) -> bool:
    if depth == 0:
        return isinstance(data, int | float) and not isinstance(data, bool)
    return isinstance(data, dict) and all(_nested_numbers(v, depth - 1) for v in data.values())


def _check(args: argparse.Namespace) -> int:
    from monitor.drift.checks import Severity
    from monitor.drift.evaluate import compare
    from monitor.ingest.readers import ReadStats, read_chunks
    from monitor.outputs.render import format_table, jsonable
    from monitor.profile.model import Profile
    from monitor.summaries.window import WindowSummary

    profile = Profile.load(args.profile)
    window = WindowSummary(profile)
    read = ReadStats()  # a prediction log is filtered to the profile's model and version
    for chunk in read_chunks(args.data, predictions=tuple(args.prediction),
                             model=(profile.model, profile.version), stats=read):
        rows = next((len(v) if isinstance(v, list) else v.size for v in chunk.values()), 0)
        window.note_features(chunk, rows)
        window.update_columns(chunk, rows)
    if window.records == 0:
        raise InputError(f"no rows in {args.data}")
    if read.other_models:
        print(f"note: {sum(read.other_models.values()):,} records of other models or versions "
              f"in {Path(args.data).name} were not checked against {profile.label} "
              f"({read.others_text()})", file=sys.stderr)
    report = compare(window, profile, overrides=load_overrides(args.thresholds, 2))
    # The verdict is the exit status, whether or not anyone reads the output to its end.
    status = 1 if report.severity >= Severity.WARNING else 0
    if args.format == "json":
        _emit(json.dumps(jsonable(report.to_dict()), indent=1))
    else:
        _emit(format_table(report))
    return status


def _replay(args: argparse.Namespace) -> int:
    from monitor.stream.replay import replay_file

    summary = replay_file(args.logs, args.profiles, window_seconds=args.window,
                          grace_seconds=args.grace, min_records=args.min_records,
                          overrides=load_overrides(args.thresholds, 3), reports_path=args.reports,
                          out=sys.stdout)
    print(json.dumps({"summary": summary}), file=sys.stdout)
    return 0
