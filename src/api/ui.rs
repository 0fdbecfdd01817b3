//! The dashboard: static files compiled into the binary (`ui/` in the repository), served
//! under `/ui/` without a token. The page signs in with a user token that it keeps in
//! `sessionStorage` and sends as a bearer header to the same JSON API everyone else uses;
//! nothing here reads or writes the store.
//!
//! Every answer carries a strict Content-Security-Policy: only this origin's own script
//! and style files run, no inline script or style, no framing, and the page may talk to
//! nothing but this origin's API.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::error::{ApiError, HttpResponse};

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// One embedded file: its name under `/ui/`, media type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../ui/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../ui/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../ui/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../ui/favicon.svg"),
    },
];

/// Answers `GET /ui`, `/ui/` and `/ui/<asset>`. `path` is the request path, `asset` the
/// part after `/ui/` (empty for the page itself).
pub fn serve(path: &str, asset: &str) -> Result<HttpResponse, ApiError> {
    if path == "/ui" {
        // Relative asset URLs in the page resolve against `/ui/`, so send `/ui` there.
        return with_security_headers(
            Response::builder()
                .status(StatusCode::PERMANENT_REDIRECT)
                .header(header::LOCATION, "/ui/"),
        )
        .body(Full::new(Bytes::new()))
        .map_err(|e| ApiError::internal(e.to_string()));
    }
    let file = ASSETS
        .iter()
        .find(|a| a.name == asset)
        .ok_or_else(|| ApiError::not_found("no such dashboard file"))?;
    with_security_headers(Response::builder().status(StatusCode::OK))
        .header(header::CONTENT_TYPE, file.content_type)
        // Files change only with the binary; revalidating is cheap and never stale.
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Full::new(Bytes::from_static(file.body.as_bytes())))
        .map_err(|e| ApiError::internal(e.to_string()))
}

fn with_security_headers(
    builder: hyper::http::response::Builder,
) -> hyper::http::response::Builder {
    builder
        .header(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        )
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_page_and_its_files_with_a_strict_policy() {
        for asset in ["", "app.js", "app.css", "favicon.svg"] {
            let r = serve("/ui/x", asset).expect("asset");
            assert_eq!(r.status(), StatusCode::OK, "{asset}");
            let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
        }
        assert!(serve("/ui/nope.js", "nope.js").is_err());
        let r = serve("/ui", "").expect("redirect");
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(r.headers()[header::LOCATION], "/ui/");
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = ASSETS[0].body;
        assert!(!page.contains("<script>") && !page.contains("style="));
        assert!(!page.contains("<style"));
        assert!(!page.contains("http://") && !page.contains("https://"));
    }
}
