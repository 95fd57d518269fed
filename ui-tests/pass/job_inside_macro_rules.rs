//! Handlers written by a `macro_rules!`, some with the whole signature in
//! the macro and some with parts given by its caller.

use athyper::queue::JobContext;
use athyper::registry::Job;

macro_rules! fixed_handler {
    ($name:ident, $queue:literal) => {
        #[athyper::job(queue = $queue)]
        async fn $name(ctx: JobContext, n: u64) -> Result<u64, String> {
            let _ = ctx.id();
            Ok(n + 1)
        }
    };
}

macro_rules! given_handler {
    ($name:ident, $ctx:ident, $payload:ident : $ty:ty) => {
        #[athyper::job(queue = "given")]
        async fn $name($ctx: JobContext, $payload: $ty) -> Result<$ty, String> {
            let _ = $ctx.attempt();
            Ok($payload)
        }
    };
}

fixed_handler!(first, "made");
fixed_handler!(second, "made");
given_handler!(third, ctx, text: String);

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(first.descriptor().name, "first");
    assert_eq!(second.descriptor().queue, "made");
    let ctx = JobContext::detached("first");
    assert_eq!(first.call(ctx.clone(), 1).await, Ok(2));
    assert_eq!(third.call(ctx, "hi".to_owned()).await, Ok("hi".to_owned()));
}
