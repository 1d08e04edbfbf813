//! The `runnel` command.

fn main() {
    println!("runnel {}", env!("CARGO_PKG_VERSION"));
}
