"""Compressed CSV and JSONL (.gz, .bz2, .zst) read like the plain files, for `profile build`,
`check`, `replay` and `report`; a corrupt archive or a compressed Parquet is one clear error."""

from __future__ import annotations

import bz2
import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from monitor.cli.main import main
from monitor.demo.synthetic import Scenario, generate_columns, records, score, write_csv
from monitor.profile.build import BuildOptions, build_profile
from monitor.profile.model import Profile


def compress(path: Path, suffix: str) -> Path:
    out = path.with_name(path.name + suffix)
    data = path.read_bytes()
    if suffix == ".gz":
        out.write_bytes(gzip.compress(data))
    elif suffix == ".bz2":
        out.write_bytes(bz2.compress(data))
    else:
        with pa.output_stream(str(out), compression="zstd") as fh:
            fh.write(data)
    return out


def _logs(path: Path) -> Path:
    rng = np.random.default_rng(8)
    with path.open("w") as fh:
        for w in range(2):
            sc = Scenario(new_category_rate=0.3) if w >= 1 else None
            ts = 1_764_158_400 + 60 * w + np.sort(rng.uniform(0, 60, 300))
            for r in records(generate_columns(300, rng, sc), model="churn", version="3", ts=ts):
                fh.write(json.dumps(r) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".zst"])
def test_profile_build_reads_compressed_csv_and_jsonl(tmp_path: Path, suffix: str) -> None:
    cols = generate_columns(1500, np.random.default_rng(2))
    cols["prediction"] = score(cols)
    plain = tmp_path / "train.tsv"
    write_csv(str(tmp_path / "train.csv"), cols)
    plain.write_text((tmp_path / "train.csv").read_text().replace(",", "\t"))
    packed = compress(plain, suffix)
    built = []
    for source in (plain, packed):
        out = tmp_path / f"{source.name}.json"
        assert main(["profile", "build", str(source), "--model", "m", "--version", "1",
                     "--prediction", "prediction", "--window-size", "300",
                     "--calibration-windows", "20", "-o", str(out)]) == 0
        built.append(Profile.load(out))
    assert built[0].features.keys() == built[1].features.keys() and len(built[0].features) == 17
    assert [f.summary.to_dict() for f in built[0].features.values()] == \
        [f.summary.to_dict() for f in built[1].features.values()]
    logs = compress(_logs(tmp_path / "logs.jsonl"), suffix)
    assert main(["profile", "build", str(logs), "--model", "churn", "--version", "3",
                 "--window-size", "300", "--calibration-windows", "20",
                 "-o", str(tmp_path / "from-logs.json")]) == 0
    assert Profile.load(tmp_path / "from-logs.json").source["rows"] == 600


@pytest.mark.parametrize("suffix", [".zst"])  # .gz and .bz2 go through the same reader
def test_check_replay_and_report_read_compressed_logs(profile: Profile, profiles_dir: Path,
                                                      tmp_path: Path, suffix: str,
                                                      capsys) -> None:
    plain = _logs(tmp_path / "logs.jsonl")
    packed = compress(plain, suffix)
    outputs = []
    for source in (plain, packed):
        assert main(["replay", str(source), "--profiles", str(profiles_dir)]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and '"records": 600' in outputs[0]
    capsys.readouterr()
    csv = tmp_path / "batch.csv"
    cols = generate_columns(500, np.random.default_rng(4))
    cols["prediction"] = score(cols)
    write_csv(str(csv), cols)
    verdicts = []
    for source in (csv, compress(csv, suffix)):
        code = main(["check", str(source), "--profile", str(profiles_dir / "churn-3.json"),
                     "--prediction", "prediction", "--format", "json"])
        verdicts.append((code, json.loads(capsys.readouterr().out)["features"]))
    assert verdicts[0] == verdicts[1]


def test_report_reads_compressed_logs(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    train = tmp_path / "train.csv"
    train.write_text("x\n" + "".join(f"{v:.4f}\n" for v in rng.normal(0, 1, 2000)))
    profiles = tmp_path / "profiles"
    build_profile(train, BuildOptions(model="m", version="1", window_size=200,
                                      calibration_windows=20)).save(profiles / "m-1.json")
    logs = tmp_path / "logs.jsonl"
    logs.write_text("".join(json.dumps({"model": "m", "version": "1", "ts": i / 10,
                                        "features": {"x": float(rng.normal(0, 1))}}) + "\n"
                            for i in range(600)))
    out = tmp_path / "report.html"
    assert main(["report", str(compress(logs, ".bz2")), "--profiles", str(profiles),
                 "-o", str(out)]) == 0
    assert "logs.jsonl.bz2" in out.read_text()


@pytest.mark.parametrize("name,content,message", [
    ("bad.csv.gz", b"\x1f\x8bnot really gzip", "error: cannot read bad.csv.gz (gzip)"),
    ("cut.jsonl.gz", gzip.compress(b"".join(b'{"a": %d}\n' % i for i in range(50_000)), mtime=0)[:5000],
     "error: cannot read cut.jsonl.gz (gzip): Truncated"),
    ("bad.jsonl.zst", b"not zstd at all", "error: cannot read bad.jsonl.zst (zstd)"),
    ("t.parquet.gz", gzip.compress(b"PAR1", mtime=0), "error: Parquet compresses internally"),
], ids=["bad-gzip", "truncated-gzip", "bad-zstd", "gzipped-parquet"])
def test_bad_compressed_input_is_one_line_error(tmp_path: Path, name: str, content: bytes,
                                               message: str) -> None:
    (tmp_path / name).write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "monitor", "profile", "build", name, "--model",
                           "m", "--version", "1"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith(message), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
