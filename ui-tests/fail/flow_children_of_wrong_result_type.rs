use athyper::queue::{Child, JobContext};

#[athyper::job(queue = "pages")]
async fn fetch(_ctx: JobContext, url: String) -> Result<usize, String> {
    Ok(url.len())
}

#[athyper::job(queue = "reports")]
async fn report(ctx: JobContext, _title: String) -> Result<(), String> {
    // `fetch` returns a size: its children's results do not read as text.
    let pages: Vec<Child<String>> = ctx.children_of(&fetch).await.map_err(|e| e.to_string())?;
    println!("{}", pages.len());
    Ok(())
}

fn main() {}
