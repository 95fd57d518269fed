use athyper::prelude::*;

#[athyper::job]
async fn send_email(_ctx: JobContext, _to: String) -> Result<(), String> {
    let counter = std::rc::Rc::new(1);
    tokio::task::yield_now().await;
    drop(counter);
    Ok(())
}

fn main() {}
