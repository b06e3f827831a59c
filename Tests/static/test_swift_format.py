"""The Swift sources are in the one style `.swift-format` describes: `swift format lint --strict` finds nothing.

Run `swift format format -i --recursive Shared Services Tools/Loadgen Tests Package.swift` to fix what it finds.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SWIFT_FOLDERS = ["Shared", "Services", "Tools/Loadgen", "Tests", "Package.swift"]


def swift_format() -> list[str]:
    swift = shutil.which("swift")
    if swift is None:
        pytest.fail("no swift toolchain on PATH: the style check needs `swift format`")
    return [swift, "format"]


def test_swift_sources_follow_the_checked_in_style():
    done = subprocess.run(
        [*swift_format(), "lint", "--strict", "--recursive", *SWIFT_FOLDERS],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    findings = (done.stdout + done.stderr).strip()
    assert done.returncode == 0 and not findings, f"swift format lint found:\n{findings}"


def test_the_style_check_catches_a_violation(tmp_path: Path):
    bad = tmp_path / "Bad.swift"
    bad.write_text("import Foundation\nlet x = [1,2 ,3]\n" + "let y = 1" + " " * 130 + "\n")
    done = subprocess.run(
        [*swift_format(), "lint", "--strict", "--configuration", str(ROOT / ".swift-format"), str(bad)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, "a file with a 140-character line passed the lint"
