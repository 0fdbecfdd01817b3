//! The hand-rolled router: maps a path to a [`Route`] with its path parameters, and lists
//! which methods each route answers (for 404 vs 405 and the `Allow` header).

use hyper::Method;

#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Healthz,
    Metrics,
    Backup,
    Overview,
    Webhooks,
    Webhook(&'a str),
    RotateSecret(&'a str),
    Deliveries(&'a str),
    Delivery(&'a str, &'a str),
    RetryDelivery(&'a str, &'a str),
    Recover(&'a str),
    SendTest(&'a str),
    Stats(&'a str),
    Events,
    Event(&'a str),
    /// The dashboard's static files (`/ui`, `/ui/`, `/ui/<asset>`); no token needed.
    Ui(&'a str),
}

impl Route<'_> {
    /// The methods this route answers, as the `Allow` header spells them.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Healthz | Route::Metrics | Route::Ui(_) | Route::Stats(_) | Route::Overview => {
                "GET"
            }
            Route::Webhooks | Route::Events => "GET, POST",
            Route::Webhook(_) => "GET, PATCH, DELETE",
            Route::Event(_) | Route::Deliveries(_) | Route::Delivery(..) => "GET",
            Route::RetryDelivery(..)
            | Route::Recover(_)
            | Route::RotateSecret(_)
            | Route::SendTest(_)
            | Route::Backup => "POST",
        }
    }

    pub fn allows(&self, method: &Method) -> bool {
        self.allow().split(", ").any(|m| m == method.as_str())
    }
}

/// Matches the path (without query). `None` is a 404: no such route.
pub fn route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix('/')?;
    let segments: Vec<&str> = rest.split('/').collect();
    let route = match segments.as_slice() {
        ["healthz"] => Route::Healthz,
        ["metrics"] => Route::Metrics,
        ["api", "admin", "backup"] => Route::Backup,
        ["api", "admin", "overview"] => Route::Overview,
        ["api", "hooks", "webhooks"] => Route::Webhooks,
        ["api", "hooks", "webhooks", id] if !id.is_empty() => Route::Webhook(id),
        ["api", "hooks", "webhooks", id, "deliveries"] if !id.is_empty() => Route::Deliveries(id),
        ["api", "hooks", "webhooks", id, "deliveries", d] if !id.is_empty() && !d.is_empty() => {
            Route::Delivery(id, d)
        }
        ["api", "hooks", "webhooks", id, "deliveries", d, "retry"]
            if !id.is_empty() && !d.is_empty() =>
        {
            Route::RetryDelivery(id, d)
        }
        ["api", "hooks", "webhooks", id, "recover"] if !id.is_empty() => Route::Recover(id),
        ["api", "hooks", "webhooks", id, "rotate-secret"] if !id.is_empty() => {
            Route::RotateSecret(id)
        }
        ["api", "hooks", "webhooks", id, "test"] if !id.is_empty() => Route::SendTest(id),
        ["api", "hooks", "webhooks", id, "stats"] if !id.is_empty() => Route::Stats(id),
        ["ui"] => Route::Ui(""),
        ["ui", asset] => Route::Ui(asset),
        ["api", "hooks", "events"] => Route::Events,
        ["api", "hooks", "events", id] if !id.is_empty() => Route::Event(id),
        _ => return None,
    };
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_routes_and_parameters() {
        assert_eq!(route("/healthz"), Some(Route::Healthz));
        assert_eq!(route("/api/hooks/webhooks"), Some(Route::Webhooks));
        assert_eq!(
            route("/api/hooks/webhooks/wh-1"),
            Some(Route::Webhook("wh-1"))
        );
        assert_eq!(route("/api/hooks/events/e:1"), Some(Route::Event("e:1")));
        assert_eq!(
            route("/api/hooks/webhooks/w/deliveries"),
            Some(Route::Deliveries("w"))
        );
        assert_eq!(
            route("/api/hooks/webhooks/w/deliveries/d"),
            Some(Route::Delivery("w", "d"))
        );
        for missing in [
            "",
            "/",
            "/api",
            "/api/hooks/webhooks/",
            "/api/hooks/webhooks//x",
            "/healthz/",
            "//healthz",
            "/api/hooks/nope",
        ] {
            assert_eq!(route(missing), None, "{missing:?}");
        }
    }

    #[test]
    fn lists_allowed_methods() {
        let r = Route::Webhook("x");
        assert!(r.allows(&Method::PATCH));
        assert!(!r.allows(&Method::POST));
        assert!(!r.allows(&Method::HEAD));
        assert_eq!(r.allow(), "GET, PATCH, DELETE");
    }
}
