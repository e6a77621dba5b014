//! Every TOML file the harness reads besides scenarios and device
//! descriptions — bench files, broker deviation files, the statement
//! lists — reports a syntax error on the line a user must fix, with LF and
//! CRLF endings alike. They once counted lines over `text[..span]`: one
//! line late for a backslash at the end of a line (toml points past the
//! escaped character), and a panic should a span fall inside a multi-byte
//! character. Each now goes through the scenario loader's `Source`.

use std::path::Path;

use mqtt_hil::check::coverage::SpecFile;
use mqtt_hil::error::Error;
use mqtt_hil::runner::deviation::Deviations;
use mqtt_hil::target::bench::Bench;

/// Text with an invalid escape on line 2: at the end of the line (toml
/// points at the next line's start), and of a two-byte character.
const CASES: &[(&str, &str)] = &[
    (
        "backslash at end of line",
        "# x\nbad = \"ab\\\nc\"\nz = 1\n",
    ),
    (
        "escaped multi-byte character",
        "# x\nbad = \"a\\é\"\nz = 1\n",
    ),
    (
        "escaped three-byte character",
        "# ü\nbad = \"€\\€€\"\nz = 1\n",
    ),
];

fn line_of(e: Error) -> (usize, String) {
    match e {
        Error::Input { line, message, .. } => (line, message),
        other => panic!("expected an input error with a line, got {other}"),
    }
}

fn each_ending(mut check: impl FnMut(&str, &str, &str)) {
    for (what, text) in CASES {
        check(what, "LF", text);
        check(what, "CRLF", &text.replace('\n', "\r\n"));
    }
}

#[test]
fn bench_file_syntax_errors_name_the_escape_line() {
    each_ending(|what, ending, text| {
        let e = Bench::parse(Path::new("bench.toml"), text).expect_err(what);
        let (line, message) = line_of(e);
        assert_eq!(line, 2, "{what} ({ending}): {message}");
        assert!(message.contains("escape"), "{what} ({ending}): {message}");
    });
}

#[test]
fn deviation_file_syntax_errors_name_the_escape_line() {
    each_ending(|what, ending, text| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("deviations")).unwrap();
        std::fs::write(dir.path().join("deviations/b.toml"), text).unwrap();
        let Err(e) = Deviations::load(dir.path(), "b") else {
            panic!("{what} ({ending}): loaded");
        };
        let (line, message) = line_of(e);
        assert_eq!(line, 2, "{what} ({ending}): {message}");
    });
}

#[test]
fn statement_list_syntax_errors_name_the_escape_line() {
    each_ending(|what, ending, text| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spec.toml");
        std::fs::write(&path, text).unwrap();
        let e = SpecFile::load(&path).expect_err(what);
        let (line, message) = line_of(e);
        assert_eq!(line, 2, "{what} ({ending}): {message}");
    });
}
