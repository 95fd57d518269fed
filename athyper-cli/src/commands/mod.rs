//! The subcommands.

mod act;
mod dashboard;
mod show;
mod watch;

use athyper::admin::Admin;
use athyper::queue::{JobId, QueueError};

use crate::cli::{Cli, Command};
use crate::connect::Target;
use crate::error::CliError;
use crate::output::Output;

/// What every subcommand works with.
pub struct Ctx {
    pub admin: Admin,
    pub target: Target,
    pub out: Output,
}

impl Ctx {
    /// A queue error as the line the person sees.
    pub fn fail(&self, error: QueueError) -> CliError {
        self.target.error(error)
    }

    /// Fails with exit code 3 unless Redis knows `queue`.
    pub async fn expect_queue(&self, queue: &str) -> Result<(), CliError> {
        self.admin
            .expect_queue(queue)
            .await
            .map_err(|e| self.fail(e))
    }
}

/// Runs the command line's subcommand.
pub async fn run(cli: Cli, out: Output) -> Result<(), CliError> {
    let target = Target::new(
        cli.global.redis_url.as_deref(),
        cli.global.prefix.as_deref(),
        |name| std::env::var(name).ok(),
    )?;
    let admin = target.connect().await?;
    let ctx = Ctx { admin, target, out };
    match cli.command {
        Command::Queues => show::queues(&ctx).await,
        Command::Jobs(args) => show::jobs(&ctx, args).await,
        Command::Job { queue, id } => show::job(&ctx, &queue, &id.into()).await,
        Command::Workers { queue } => show::workers(&ctx, &queue).await,
        Command::Schedules { queue } => show::schedules(&ctx, &queue).await,
        Command::Retry {
            queue,
            ids,
            all_failed,
        } => {
            if all_failed {
                act::retry_all_failed(&ctx, &queue).await
            } else {
                act::retry(&ctx, &queue, &job_ids(ids)).await
            }
        }
        Command::Remove { queue, ids } => act::remove(&ctx, &queue, &job_ids(ids)).await,
        Command::Cancel { queue, ids } => act::cancel(&ctx, &queue, &job_ids(ids)).await,
        Command::Promote { queue, id } => act::promote(&ctx, &queue, &id.into()).await,
        Command::Pause { queue } => act::pause(&ctx, &queue, true).await,
        Command::Resume { queue } => act::pause(&ctx, &queue, false).await,
        Command::Clean {
            queue,
            state,
            older_than,
        } => act::clean(&ctx, &queue, state.into(), older_than).await,
        Command::Watch {
            queues,
            interval,
            count,
        } => watch::watch(&ctx, &queues, interval, count).await,
        Command::Dashboard { bind } => dashboard::serve(&ctx, bind).await,
    }
}

/// The ids as given, each once, in their first order.
fn job_ids(ids: Vec<String>) -> Vec<JobId> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter()
        .filter(|id| seen.insert(id.clone()))
        .map(JobId::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_taken_once() {
        let ids = job_ids(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(ids, [JobId::from("b"), JobId::from("a")]);
    }
}
