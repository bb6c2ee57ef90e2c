//! The `ctb` binary.

fn main() -> std::process::ExitCode {
    ctb::cli::main()
}
