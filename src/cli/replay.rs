//! `ctb replay`: parse a recorded control-mode stream and print its items.

use std::io::{self, BufWriter, Read, Write};

use tmux_control::Parser;

use super::item_json::item_to_json;

/// Reads `input` to the end and writes one JSON line per item to `out`.
pub fn replay(mut input: impl Read, out: impl Write) -> io::Result<()> {
    let mut out = BufWriter::new(out);
    let mut parser = Parser::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut eof = false;
    while !eof {
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            parser.finish();
            eof = true;
        } else {
            parser.feed(&buf[..n]);
        }
        while let Some(item) = parser.next_item() {
            serde_json::to_writer(&mut out, &item_to_json(&item))?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
}

/// `ctb replay [FILE|-]`: items on stdout; a failure is one line on
/// stderr and exit status 1 (stdout carries only items). A reader that
/// went away (`| head`) ends it quietly.
pub fn run(file: Option<std::path::PathBuf>) -> std::process::ExitCode {
    use anyhow::Context;
    let res = match file.filter(|f| f.as_os_str() != "-") {
        Some(f) => std::fs::File::open(&f)
            .with_context(|| format!("cannot open {}", f.display()))
            .and_then(|fh| replay(fh, io::stdout().lock()).with_context(|| format!("reading {}", f.display()))),
        None => replay(io::stdin().lock(), io::stdout().lock()).context("reading stdin"),
    };
    match res {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if super::is_broken_pipe(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            super::stderr_line(format_args!("ctb replay: {e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}
