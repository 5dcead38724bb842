"""The command line: a bad command line is one line (exit 2), an internal error one line unless
PETRI_DEBUG=1 asks for its traceback."""

from __future__ import annotations

import pytest

from petri.cli import main


@pytest.mark.parametrize("args,needle", [
    (["run", "{f}", "--max-members", "abc"], "Invalid value for '--max-members'"),
    (["run", "{f}", "--max-members", "0"], "greater than or equal to 1"),
    (["run", "{f}", "--max-members", "-3"], "greater than or equal to 1"),
    (["run", "{f}", "--frobnicate"], "No such option: --frobnicate"),
    (["run"], "Missing argument"),
    (["show"], "Missing argument"),
    (["nosuchcommand"], "No such command 'nosuchcommand'"),
    (["run", "{f}", "--executor", "spark"], "--executor: 'spark' is not an executor; allowed: local, ray"),
    (["export", "{out}", "--format", "xlsx"], "--format: 'xlsx' is not supported"),
    (["run", "{f}", "--out", "{file}"], "is a file; a study directory is a folder"),
    (["run", "{missing}"], "cannot read study file (No such file or directory)"),
    (["run", "{tmp}"], "is a folder; give the study's TOML file"),
])
def test_bad_command_lines_are_one_line(tmp_path, cli, small_study, small_study_run, args, needle):
    f = tmp_path / "s.toml"
    f.write_text(small_study)
    (tmp_path / "a-file").write_text("x")
    subs = {"f": f, "out": small_study_run, "file": tmp_path / "a-file", "missing": tmp_path / "nope.toml", "tmp": tmp_path}
    code, _, err = cli(*[a.format(**subs) for a in args])
    assert code == 2 and err.startswith("petri: error: ") and err.count("\n") == 1 and needle in err, err


def test_debug_shows_the_traceback(cli, small_study_file, monkeypatch):
    import petri.api

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(petri.api, "dry_run", broken)
    f = small_study_file
    code, _, err = cli("run", f, "--dry-run")
    assert code == 1 and "petri: internal error: ZeroDivisionError: a bug" in err and err.count("\n") == 1
    monkeypatch.setenv("PETRI_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["run", str(f), "--dry-run"])
