import subprocess
import sys


def run_bot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], capture_output=True, text=True)


def test_help_lists_every_command() -> None:
    result = run_bot("--help")
    assert result.returncode == 0
    for command in [
        "check",
        "preview",
        "run",
        "post",
        "retract",
        "status",
        "mentions",
        "pause",
        "resume",
        "sandbox",
    ]:
        assert command in result.stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run_bot("frobnicate")
    assert result.returncode == 2
