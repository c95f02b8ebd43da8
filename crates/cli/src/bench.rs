pub fn run(_: &BenchArgs) -> Result<(), crate::Failure> { Ok(()) }
#[derive(Debug, clap::Args)] pub struct BenchArgs {}
