//! Who may act, CSRF tokens, and the headers every answer carries.
//!
//! Writes need the admin token. A person signs in once with it on the
//! sign-in page and gets an `HttpOnly`, `SameSite=Strict` cookie holding a
//! hash of the token (never the token itself); a script sends
//! `Authorization: Bearer <token>` instead. Every form that changes
//! something carries a CSRF token that must equal the `athyper_csrf`
//! cookie (double submit); a request whose `Origin` names another host is
//! refused too. Requests authorised by the bearer header carry no ambient
//! credentials, so they need no CSRF token.

use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Response, StatusCode};

use super::config::{DashboardConfig, Writes};
use super::html::Access;

pub(crate) const SESSION_COOKIE: &str = "athyper_admin";
pub(crate) const CSRF_COOKIE: &str = "athyper_csrf";

/// The cookie value that proves the token was presented: a hash of it, so
/// that a leaked cookie does not leak the token, and so that changing the
/// token signs everybody out.
pub(crate) fn session_value(token: &str) -> String {
    let mut hash = sha1_smol::Sha1::new();
    hash.update(b"athyper dashboard session\0");
    hash.update(token.as_bytes());
    hash.digest().to_string()
}

/// A fresh random CSRF token.
pub(crate) fn new_csrf() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Equal, in a time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name`, if sent.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// How a write request was authorised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// The session cookie: the request needs a CSRF token.
    Cookie,
    /// `Authorization: Bearer`: no ambient credential, no CSRF token needed.
    Header,
    /// An outer layer: the request needs a CSRF token.
    Layer,
}

/// Why a request may not write.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) reason: &'static str,
}

/// What the person sending `headers` may do, for showing the right
/// buttons.
pub(crate) fn access(config: &DashboardConfig, session: &str, headers: &HeaderMap) -> Access {
    match &config.writes {
        Writes::Off => Access::ReadOnly,
        Writes::Layer => Access::Layer,
        Writes::Token(_) => match authorise(config, session, headers) {
            Ok(_) => Access::SignedIn,
            Err(_) => Access::Locked,
        },
    }
}

/// Whether the request may write, and how it proved it.
pub(crate) fn authorise(
    config: &DashboardConfig,
    session: &str,
    headers: &HeaderMap,
) -> Result<Via, Refusal> {
    match &config.writes {
        Writes::Off => Err(Refusal {
            status: StatusCode::FORBIDDEN,
            reason: "this dashboard is read-only: set ATHYPER_ADMIN_TOKEN where it runs to allow actions",
        }),
        Writes::Layer => Ok(Via::Layer),
        Writes::Token(token) => {
            if let Some(given) = bearer(headers) {
                return if same(given, token) {
                    Ok(Via::Header)
                } else {
                    Err(Refusal {
                        status: StatusCode::UNAUTHORIZED,
                        reason: "the bearer token is not the admin token",
                    })
                };
            }
            match cookie(headers, SESSION_COOKIE) {
                Some(value) if same(value, session) => Ok(Via::Cookie),
                _ => Err(Refusal {
                    status: StatusCode::UNAUTHORIZED,
                    reason: "actions need the admin token: sign in, or send Authorization: Bearer <token>",
                }),
            }
        }
    }
}

/// Whether a form sent with `headers` carries the right CSRF token
/// (`form_token`) and comes from this site.
pub(crate) fn check_csrf(headers: &HeaderMap, form_token: Option<&str>) -> Result<(), Refusal> {
    // Behind a reverse proxy the browser's origin is the proxy's host,
    // which the proxy passes on as X-Forwarded-Host.
    let header_value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header_value("host");
    let forwarded = header_value("x-forwarded-host")
        .and_then(|v| v.split(',').next())
        .map(str::trim);
    if let (Some(origin), Some(_)) = (header_value("origin"), host.or(forwarded)) {
        let origin_host = origin
            .split_once("://")
            .map_or(origin, |(_, rest)| rest)
            .trim_end_matches('/');
        let ours = [host, forwarded]
            .into_iter()
            .flatten()
            .any(|h| h == origin_host);
        if origin != "null" && !ours {
            return Err(Refusal {
                status: StatusCode::FORBIDDEN,
                reason: "the form was sent from another site",
            });
        }
    }
    match (cookie(headers, CSRF_COOKIE), form_token) {
        (Some(cookie), Some(form)) if !cookie.is_empty() && same(cookie, form) => Ok(()),
        _ => Err(Refusal {
            status: StatusCode::FORBIDDEN,
            reason: "the form's CSRF token is missing or stale: reload the page and try again",
        }),
    }
}

/// The `Path` attribute for the dashboard's cookies.
pub(crate) fn cookie_path(prefix: &str) -> &str {
    if prefix.is_empty() { "/" } else { prefix }
}

/// Whether the browser reached the dashboard over HTTPS, as a TLS proxy in
/// front of it says: cookies are then marked `Secure`.
pub(crate) fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .next()
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        })
}

/// A `Set-Cookie` value.
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    secure: bool,
) -> HeaderValue {
    let age = max_age.map_or(String::new(), |s| format!("; Max-Age={s}"));
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict{age}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Adds the headers every dashboard answer carries.
pub(crate) fn harden<B>(mut response: Response<B>) -> Response<B> {
    let headers = response.headers_mut();
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    );
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "x-frame-options", "DENY");
    set(headers, "referrer-policy", "same-origin");
    set(headers, "cache-control", "no-store");
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const TOKEN: &str = "0123456789abcdef";

    #[test]
    fn reads_cookies_among_others() {
        let h = headers(&[("cookie", "a=1; athyper_csrf=xyz ; b=2")]);
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn token_by_cookie_or_bearer() {
        let config = DashboardConfig::default().token(TOKEN);
        let session = session_value(TOKEN);
        let none = authorise(&config, &session, &HeaderMap::new()).unwrap_err();
        assert_eq!(none.status, StatusCode::UNAUTHORIZED);
        let cookie = format!("{SESSION_COOKIE}={session}");
        let h = headers(&[("cookie", &cookie)]);
        assert_eq!(authorise(&config, &session, &h).unwrap(), Via::Cookie);
        let h = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        assert_eq!(authorise(&config, &session, &h).unwrap(), Via::Header);
        let h = headers(&[("authorization", "Bearer wrong")]);
        assert_eq!(
            authorise(&config, &session, &h).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        assert!(!session.contains(TOKEN));
    }

    #[test]
    fn read_only_refuses_everybody() {
        let config = DashboardConfig::default();
        let h = headers(&[("authorization", "Bearer 0123456789abcdef")]);
        assert_eq!(
            authorise(&config, "", &h).unwrap_err().status,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn csrf_is_double_submitted_from_this_site() {
        let h = headers(&[("cookie", "athyper_csrf=abc"), ("host", "127.0.0.1:7070")]);
        assert!(check_csrf(&h, Some("abc")).is_ok());
        assert!(check_csrf(&h, Some("abd")).is_err());
        assert!(check_csrf(&h, None).is_err());
        assert!(check_csrf(&HeaderMap::new(), Some("abc")).is_err());
        let h = headers(&[
            ("cookie", "athyper_csrf=abc"),
            ("host", "127.0.0.1:7070"),
            ("origin", "https://evil.example"),
        ]);
        assert!(check_csrf(&h, Some("abc")).is_err());
        let h = headers(&[
            ("cookie", "athyper_csrf=abc"),
            ("host", "127.0.0.1:7070"),
            ("origin", "http://127.0.0.1:7070"),
        ]);
        assert!(check_csrf(&h, Some("abc")).is_ok());
        let h = headers(&[
            ("cookie", "athyper_csrf=abc"),
            ("host", "10.0.0.7:9464"),
            ("x-forwarded-host", "ops.example.com"),
            ("origin", "https://ops.example.com"),
        ]);
        assert!(check_csrf(&h, Some("abc")).is_ok(), "behind a proxy");
    }

    #[test]
    fn cookies_are_secure_behind_a_tls_proxy() {
        assert!(over_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!over_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!over_https(&HeaderMap::new()));
        let cookie = set_cookie("a", "b", "/admin", Some(60), true);
        assert_eq!(
            cookie.to_str().unwrap(),
            "a=b; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
    }
}
