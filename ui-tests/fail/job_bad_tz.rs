use athyper::prelude::*;

#[athyper::job(cron = "0 0 9 * * Mon-Fri", tz = "Europe/Berln")]
async fn standup_reminder(_ctx: JobContext, _payload: ()) -> Result<(), String> {
    Ok(())
}

fn main() {}
