//! The `twlab` binary: everything lives in the library so tests and other
//! front-ends can drive it; `main` only hands over the process exit code.

fn main() {
    std::process::exit(twlab::run());
}
