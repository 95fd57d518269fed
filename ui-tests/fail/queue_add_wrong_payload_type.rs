use athyper::queue::{JobContext, Queue};

#[athyper::job(queue = "math")]
async fn double(_ctx: JobContext, n: u64) -> Result<u64, String> {
    Ok(n * 2)
}

async fn produce(queue: Queue) -> Result<(), Box<dyn std::error::Error>> {
    // `double` takes a number, not text.
    queue.add(&double, "21".to_owned()).await?;
    Ok(())
}

fn main() {
    let _ = produce;
}
