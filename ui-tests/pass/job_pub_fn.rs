//! A `pub` handler in a module is usable from outside it: the handle, its
//! `call` and its `Job` impl share the function's visibility.
#![deny(warnings)]

mod jobs {
    use athyper::prelude::*;

    /// Welcomes a new user.
    #[athyper::job(queue = "users")]
    pub async fn welcome(_ctx: JobContext, user_id: u64) -> Result<(), String> {
        if user_id == 0 {
            Err("no user".to_owned())
        } else {
            Ok(())
        }
    }

    #[athyper::job]
    pub(crate) async fn audit(_ctx: JobContext, _line: String) -> Result<(), String> {
        Ok(())
    }
}

fn takes_job<J: athyper::prelude::Job<Payload = u64>>(job: &J) -> &'static str {
    job.descriptor().queue
}

fn main() {
    let handle: jobs::welcome = jobs::welcome;
    assert_eq!(takes_job(&handle), "users");
    let _ = jobs::audit.call(
        athyper::prelude::JobContext::detached("audit"),
        String::new(),
    );
    assert_eq!(format!("{handle:?}"), "welcome");
}
