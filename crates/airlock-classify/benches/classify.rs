//! Classification benchmarks (filled in below).
fn main() {}
