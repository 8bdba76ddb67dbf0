"""The faceidx command: stdout carries only the result, whatever logging the process set up before."""

from __future__ import annotations

import json
import logging
import sys

from faceidx.cli import main


def test_json_output_stays_parseable_when_logs_were_going_to_stdout(tmp_path, capsys, monkeypatch):
    # what the worker's own logging setup leaves behind in a process: every log record on stdout
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.StreamHandler(sys.stdout)])
    logging.getLogger().setLevel(logging.INFO)
    assert main(["--output-uri", str(tmp_path), "table", "show", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)  # a log line on stdout would break this
    assert document["faces"] == {}
