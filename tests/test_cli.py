"""The command line: exit codes, output formats, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.cli.main import main
from monitor.demo.synthetic import Scenario, generate_columns, records, score, write_csv
from monitor.profile.model import Profile


def _batch_csv(path: Path, scenario: Scenario | None = None, n: int = 500) -> Path:
    cols = generate_columns(n, np.random.default_rng(11), scenario)
    cols["prediction"] = score(cols)
    write_csv(str(path), cols)
    return path


def test_check_clean_batch_exits_0(profile: Profile, tmp_path: Path, capsys) -> None:
    prof = profile.save(tmp_path / "p.json")
    data = _batch_csv(tmp_path / "b.csv")
    code = main(["check", str(data), "--profile", str(prof), "--prediction", "prediction"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "numeric features" in out and "findings: none" in out


def test_check_drift_exits_1_with_json_metrics(profile: Profile, tmp_path: Path, capsys) -> None:
    prof = profile.save(tmp_path / "p.json")
    data = _batch_csv(tmp_path / "b.csv", Scenario(mean_shift=1.0))
    code = main(["check", str(data), "--profile", str(prof), "--prediction", "prediction",
                 "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["features"]["age"]["severity"] == "critical"
    assert {f["check"] for f in report["findings"] if f["feature"] == "age"} >= {"mean_shift", "ks"}
    assert set(report["features"]["age"]["metrics"]) >= {
        "null_rate", "out_of_range_rate", "min", "max", "mean", "mean_shift", "psi", "js", "ks",
        "wasserstein"}
    assert set(report["features"]["state"]["metrics"]) >= {
        "null_rate", "novelty_rate", "new_values", "psi", "js", "chi2_p"}
    assert set(report["features"]["comment"]["metrics"]) >= {
        "null_rate", "length_mean", "length_psi", "language_tvd", "unseen_language_rate",
        "oov_rate", "vocab_js"}


def test_threshold_override_file_changes_the_verdict(profile: Profile, tmp_path: Path, capsys) -> None:
    prof = profile.save(tmp_path / "p.json")
    data = _batch_csv(tmp_path / "b.csv")
    overrides = tmp_path / "t.yaml"
    overrides.write_text("'*':\n  psi: 0.0\n")
    assert main(["check", str(data), "--profile", str(prof), "--prediction", "prediction",
                 "--thresholds", str(overrides)]) == 1


def test_replay_prints_alert_lines_and_a_summary(profiles_dir: Path, tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(5)
    logs = tmp_path / "logs.jsonl"
    with logs.open("w") as fh:
        for w in range(6):
            sc = Scenario(new_category_rate=0.2) if w >= 3 else None
            ts = 1_764_158_400 + 60 * w + np.sort(rng.uniform(0, 60, 400))
            for r in records(generate_columns(400, rng, sc), model="churn", version="3", ts=ts):
                fh.write(json.dumps(r) + "\n")
        fh.write("not json\n[1]\n\xff\n")
    assert main(["replay", str(logs), "--profiles", str(profiles_dir)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    summary = lines[-1]["summary"]
    assert summary["records"] == 2400 and summary["invalid_records"] == 3
    alerts = lines[:-1]
    assert any(a["feature"] == "state" and a["check"] == "novelty_rate" and a["status"] == "firing"
               for a in alerts)
    for a in alerts:
        assert set(a) >= {"alert_id", "status", "severity", "model", "version", "feature", "check",
                          "value", "threshold", "window_start", "window_end", "profile_id", "message"}


@pytest.mark.parametrize("argv,message", [
    (["check", "missing.csv", "--profile", "p.json"], "error: profile not found"),
    (["profile", "build", "missing.csv", "--model", "m", "--version", "1"], "error: file not found"),
    (["profile", "build", "x.csv", "--model", "m", "--version", "1", "--window-size", "-3"],
     "error: argument --window-size: must be > 0: -3"),
    (["replay", "x.jsonl", "--profiles", "nowhere"], "error:"),
    (["frobnicate"], "error: argument command: invalid choice"),
])
def test_bad_arguments_print_one_line_and_exit_2(argv, message, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "monitor", *argv], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_profile_build_command_writes_the_profile(training_csv: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "m-1.json"
    assert main(["profile", "build", str(training_csv), "--model", "m", "--version", "1",
                 "--prediction", "prediction", "--calibration-windows", "30", "-o", str(out)]) == 0
    assert Profile.load(out).model == "m" and "wrote" in capsys.readouterr().out


def _run_with_closed_stdout(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run the CLI with its stdout a pipe whose reader has already gone (`check ... | head`)."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "monitor", *argv], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, cwd=cwd, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_check_with_stdout_closed_still_exits_1_on_drift(profile: Profile, tmp_path: Path,
                                                         fmt: str) -> None:
    prof = profile.save(tmp_path / "p.json")
    drifted = _batch_csv(tmp_path / "d.csv", Scenario(mean_shift=1.0))
    clean = _batch_csv(tmp_path / "c.csv")
    common = ["--profile", str(prof), "--prediction", "prediction", "--format", fmt]
    proc = _run_with_closed_stdout(["check", str(drifted), *common], tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr == ""
    proc = _run_with_closed_stdout(["check", str(clean), *common], tmp_path)
    assert proc.returncode == 0 and proc.stderr == ""


def test_readme_check_synopsis_shows_every_check_option() -> None:
    """README's `drift-monitor check` synopsis names each option `check --help` lists."""
    from monitor.cli.main import build_parser

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    synopsis = next(line for line in readme.splitlines() if line.startswith("drift-monitor check "))
    check = build_parser()._subparsers._group_actions[0].choices["check"]  # type: ignore[union-attr]
    options = {o for a in check._actions for o in a.option_strings if o.startswith("--")} - {"--help"}
    assert options and all(o in synopsis for o in options), (options, synopsis)


def test_check_on_a_log_of_several_models_checks_the_profiles_model(
        profile: Profile, tmp_path: Path) -> None:
    """`check` merged every model of a log (50% nulls on every feature); now it filters to the
    profile's model and version and says how many other records it left out."""
    prof = profile.save(tmp_path / "p.json")
    rng = np.random.default_rng(6)
    logs = tmp_path / "logs.jsonl"
    with logs.open("w") as fh:
        ts = 1_764_158_400 + np.arange(500.0)
        for r in records(generate_columns(500, rng), model="churn", version="3", ts=ts):
            fh.write(json.dumps(r) + "\n")
            fh.write(json.dumps({"model": "fraud", "version": "1", "ts": r["ts"],
                                 "features": {"amount": 3.5}}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "monitor", "check", str(logs), "--profile",
                           str(prof), "--format", "json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    report = json.loads(proc.stdout)
    assert report["records"] == 500
    assert report["features"]["age"]["metrics"]["null_rate"] < 0.05
    assert "amount" not in report.get("unexpected_features", [])
    assert proc.stderr.startswith("note: 500 records of other models or versions in logs.jsonl "
                                  "were not checked against churn-3 (fraud v1: 500)"), proc.stderr
