"""The environment file's lines: what bash reads back is exactly what was written."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from faceidx_dev.local.shell_env import env_file_text, write_env_file


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "",
        "with spaces and 'single' and \"double\" quotes",
        "$HOME `uname` $(echo no) \\ ; && | > <",
        "s3://bucket/prefix with space/",
        "line one\nline two",
        "naïve/ünïcode",
    ],
)
def test_a_sourced_value_is_the_value_written(tmp_path, value):
    path = write_env_file(tmp_path / "env", env_file_text({"FACEIDX_X": value}, comment="a comment"))
    dump = "import json, os; print(json.dumps(os.environ.get('FACEIDX_X')))"
    result = subprocess.run(
        ["bash", "-c", f'source "$1" && "{sys.executable}" -c "{dump}"', "bash", str(path)],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(result.stdout) == value


def test_path_goes_first_and_the_users_aws_settings_are_unset(tmp_path):
    text = env_file_text({"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, path_first=tmp_path / "my bin")
    assert text.splitlines() == [
        "unset AWS_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL_S3",
        f"export PATH='{tmp_path}/my bin':\"$PATH\"",
        "export AWS_ENDPOINT_URL=http://127.0.0.1:5000",
    ]
    path = write_env_file(tmp_path / "env", text)
    result = subprocess.run(
        ["bash", "-c", 'source "$1" && echo "$PATH|${AWS_PROFILE-unset}"', "bash", str(path)],
        env={"PATH": "/usr/bin:/bin", "AWS_PROFILE": "prod"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"{tmp_path}/my bin:/usr/bin:/bin|unset"


def test_a_name_that_is_not_a_shell_variable_is_refused():
    with pytest.raises(ValueError, match="not a shell variable name"):
        env_file_text({"NOT-A-NAME": "x"})
