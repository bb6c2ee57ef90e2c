//! `ctb replay` on every recorded fixture matches its expected file.

mod util;

use std::path::PathBuf;

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(util::repo().join("fixtures"))
        .unwrap()
        .flatten()
        .filter(|d| d.file_name().to_string_lossy().starts_with("tmux-"))
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "raw"))
        .collect();
    v.sort();
    v
}

#[test]
fn replay_matches_every_expected_file() {
    let all = fixtures();
    assert!(all.len() >= 15, "fixtures missing: {all:?}");
    for raw in all {
        let expected_path = raw.with_extension("expected.jsonl");
        let expected =
            std::fs::read_to_string(&expected_path).unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let out = util::ctb_bare().arg("replay").arg(&raw).output().unwrap();
        assert!(out.status.success(), "{}", raw.display());
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected, "{}", raw.display());
    }
}

#[test]
fn replay_reads_stdin() {
    let raw = util::repo().join("fixtures/tmux-3.3a/sessions-lifecycle.raw");
    let out = util::ctb_bare().arg("replay").arg("-").stdin(std::fs::File::open(raw).unwrap()).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""type":"session-renamed""#));
}

#[test]
fn replay_of_a_missing_file_is_a_one_line_error() {
    let out = util::ctb_bare().args(["replay", "/nonexistent/ctb-fixture.raw"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/ctb-fixture.raw"), "{err}");
}

#[test]
fn replay_reports_a_cut_block_as_incomplete() {
    let out = util::ctb_bare()
        .args(["replay", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"%begin 1 2 1\nline one\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    assert_eq!(s, "{\"kind\":\"incomplete\",\"time\":1,\"number\":2,\"flags\":1,\"lines\":[\"line one\"]}\n");
}
