use athyper::queue::{Flow, JobContext};

#[athyper::job(queue = "pages")]
async fn fetch(_ctx: JobContext, url: String) -> Result<usize, String> {
    Ok(url.len())
}

#[athyper::job(queue = "reports")]
async fn report(_ctx: JobContext, _title: String) -> Result<(), String> {
    Ok(())
}

fn main() {
    // `fetch` takes a URL as text, not a number.
    let _flow = Flow::new(&report, "daily".into()).child(Flow::new(&fetch, 42u64));
}
