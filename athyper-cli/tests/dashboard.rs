//! `athyper dashboard` serves the dashboard on the address it prints and
//! stops on Ctrl-C.

mod support;

use athyper_test_support::{Proc, http_get};

use support::*;

#[tokio::test]
async fn dashboard_answers_on_the_address_it_prints_and_stops_on_ctrl_c() {
    let f = Fixture::new().await;
    let mut command = command();
    command
        .args(["dashboard", "--bind", "127.0.0.1:0"])
        .env("ATHYPER_REDIS_URL", server().url())
        .env("ATHYPER_REDIS_PREFIX", &f.prefix);
    let mut proc = Proc::spawn("athyper dashboard", command);
    let line = proc.wait_for("the address", PATIENCE, |l| l.starts_with("dashboard on "));
    let url = line
        .strip_prefix("dashboard on ")
        .and_then(|rest| rest.split(' ').next())
        .expect("a URL")
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{line}"
    );
    assert!(!url.ends_with(":0/"), "the bound port, not 0: {line}");
    assert!(
        line.ends_with(&format!(
            "for Redis at 127.0.0.1:{} (prefix `{}`); Ctrl-C stops it",
            server().port(),
            f.prefix
        )),
        "{line}"
    );

    let page = http_get(&url, &[]).await.expect("the dashboard answers");
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("emails"), "{}", page.body);
    assert!(page.body.contains("reports"), "{}", page.body);

    proc.signal("INT");
    let (status, output) = proc.wait(PATIENCE);
    assert!(status.success(), "{status}: {output:?}");
    assert!(
        output.iter().any(|l| l == "dashboard stopped"),
        "{output:?}"
    );
    assert!(!output.iter().any(|l| l.contains("panicked")), "{output:?}");
}

#[tokio::test]
async fn a_taken_address_is_one_line_naming_the_fix() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let ran = run(
        &["dashboard", "--bind", &addr],
        &[("ATHYPER_REDIS_URL", server().url().as_str())],
    )
    .await
    .expect(1);
    assert_eq!(
        ran.stderr,
        format!(
            "error: cannot listen on {addr}: address in use; choose another address with --bind\n"
        )
    );
}
