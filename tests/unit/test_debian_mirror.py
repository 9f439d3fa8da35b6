"""docker/debian-mirror.sh finds the main archive in apt sources with POSIX awk (Debian's
default awk is mawk, which has no gawk ENDFILE); each awk found here runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docker" / "debian-mirror.sh"
AWKS = [name for name in ("mawk", "gawk") if shutil.which(name)] or ["awk"]

DEB822 = """\
# security first: not the main archive
Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security

Types: deb
URIs: http://mirror.example/debian/ http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
"""


def _mirror(apt: Path, awk: str, suite: str = "bookworm") -> subprocess.CompletedProcess[str]:
    """Run the script on the apt folder `apt` with `awk` first on the PATH as `awk`."""
    bin_dir = apt.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    link = bin_dir / "awk"
    link.unlink(missing_ok=True)
    link.symlink_to(shutil.which(awk) or awk)
    env = {k: v for k, v in os.environ.items() if k != "DEBIAN_MIRROR"}
    env |= {"APT_SOURCES_DIR": str(apt), "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
    return subprocess.run(
        ["bash", str(SCRIPT), suite], env=env, capture_output=True, text=True, timeout=60
    )


def _apt(tmp_path: Path, **files: str) -> Path:
    """An apt folder with sources.list.d/<name> for each `files` item (`_` stands for `.`)."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (apt / "sources.list.d" / name.replace("_", ".")).write_text(text)
    return apt


@pytest.mark.parametrize("awk", AWKS)
def test_one_stanza_sources_without_trailing_blank_line(tmp_path: Path, awk: str) -> None:
    apt = _apt(
        tmp_path, debian_sources="Types: deb\nURIs: http://one.example/debian\nSuites: bookworm"
    )
    done = _mirror(apt, awk)
    assert (done.returncode, done.stdout) == (0, "http://one.example/debian\n"), done.stderr


@pytest.mark.parametrize("awk", AWKS)
def test_deb822_with_several_stanzas(tmp_path: Path, awk: str) -> None:
    apt = _apt(tmp_path, debian_sources=DEB822)
    assert _mirror(apt, awk).stdout == "http://mirror.example/debian\n"
    assert _mirror(apt, awk, "bookworm-security").stdout == (
        "http://security.example/debian-security\n"
    )


@pytest.mark.parametrize("awk", AWKS)
def test_stanza_at_end_of_a_file_before_another_file(tmp_path: Path, awk: str) -> None:
    apt = _apt(
        tmp_path,
        a_sources="URIs: http://a.example/debian\nSuites: trixie",
        b_sources="URIs: http://b.example/debian\nSuites: bookworm",
    )
    assert _mirror(apt, awk, "trixie").stdout == "http://a.example/debian\n"
    assert _mirror(apt, awk).stdout == "http://b.example/debian\n"


@pytest.mark.parametrize("awk", AWKS)
def test_classic_list(tmp_path: Path, awk: str) -> None:
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian/ bookworm main\n"
    )
    apt = _apt(tmp_path, debian_list=text)
    assert _mirror(apt, awk).stdout == "http://list.example/debian\n"


@pytest.mark.parametrize("awk", AWKS)
def test_no_source_names_the_suite(tmp_path: Path, awk: str) -> None:
    done = _mirror(_apt(tmp_path, debian_sources=DEB822), awk, "trixie")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "names the suite trixie" in done.stderr
