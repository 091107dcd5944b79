"""profiles/churn-3.json is the demo profile its README's command builds (byte for byte)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_demo_profile_is_what_the_readme_command_builds(tmp_path: Path) -> None:
    readme = (ROOT / "profiles" / "README.md").read_text(encoding="utf-8")
    command = re.search(r"```sh\n(drift-monitor profile build .*?)\n```", readme, re.S)
    assert command is not None
    argv = command[1].replace("\\\n", " ").split()
    out = argv.index("-o")
    argv[out + 1] = str(tmp_path / "churn-3.json")
    subprocess.run([sys.executable, "-m", "monitor", *argv[1:]], cwd=ROOT, check=True,
                   capture_output=True, timeout=120)
    assert (tmp_path / "churn-3.json").read_bytes() == (ROOT / "profiles" / "churn-3.json").read_bytes(), (
        "profiles/churn-3.json is stale: run the command in profiles/README.md")
