//! `mvdp lab up|down`.
use clap::Subcommand;

#[derive(Subcommand)]
pub enum LabCmd {
    /// Build the standard lab.
    Up,
    /// Remove the standard lab.
    Down,
}

pub fn run(_cmd: LabCmd) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
