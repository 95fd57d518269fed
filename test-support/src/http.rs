//! A plain HTTP/1.1 client for checking endpoints.

/// The answer to an HTTP request: status, headers and body text.
#[derive(Debug)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The response headers.
    pub headers: hyper::HeaderMap,
    /// The body as text.
    pub body: String,
}

/// `GET url` with these extra headers, over a fresh connection.
pub async fn http_get(url: &str, headers: &[(&str, &str)]) -> Result<HttpAnswer, String> {
    http_request("GET", url, headers, "").await
}

/// `POST url` with a JSON body and these extra headers.
pub async fn http_post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpAnswer, String> {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    http_request("POST", url, &all, body).await
}

/// One HTTP/1.1 request over a fresh connection.
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<HttpAnswer, String> {
    use http_body_util::BodyExt;

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .map_err(|e| e.to_string())?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{method} {url}: {e}"))?
        .to_bytes();
    Ok(HttpAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}
