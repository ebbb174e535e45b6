//! Thin entry point: all work happens in the library; `cli` turns argv into a config.
fn main() {
    std::process::exit(actsearch::cli::main());
}
