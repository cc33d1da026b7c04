//! The VFIO workload generator (placeholder until implemented).

#[derive(clap::Args, Debug)]
pub struct ExerciseArgs {}

pub fn run(_args: &ExerciseArgs) -> anyhow::Result<()> {
    anyhow::bail!("exercise is not implemented yet")
}
