//! The shared half of the OpenAPI check: `docs/openapi.yaml` read with `yaml-rust2` into
//! the operations it documents, and a [`Checker`] that sends requests to a running hookd
//! and checks every answer against the document:
//!
//! - a documented (path template, method) must answer a documented status, with the
//!   documented media type, and a body that fits the documented schema (object keys,
//!   required keys, types, enums, `allOf` extensions of an object); an error's `code` must be in the `Error` enum;
//! - a path the document does not know must answer 404 "no such route";
//! - a method the document does not list for a path must answer 405 with an `Allow`
//!   header naming exactly the documented methods;
//! - a request body hookd accepted (2xx) must fit the documented request schema.
//!
//! Each resource test ends with [`Checker::finish`], which fails on any difference and
//! checks that every operation the test claims was seen succeeding.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::common::{self, Hookd, Resp, Settings, USER};

/// (method, path template) as the document spells the template, the method upper-case.
pub type OpId = (&'static str, &'static str);

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A hookd set up the way the resource tests expect: one attempt per delivery, three
/// webhooks per user, 8 KiB bodies (so 413 is cheap to provoke).
pub fn start() -> Hookd {
    Hookd::start_with(Settings {
        delivery: "retry_schedule = [\"0s\"]".into(),
        limits: "max_webhooks_per_user = 3\nmax_payload_bytes = 8192".into(),
        ..Settings::default()
    })
}

// ---------------------------------------------------------------------------------------
// The document.

pub struct Op {
    pub path: String,
    pub method: String,
    /// `None`: no token needed (`security: []`); else the one role needed.
    pub role: Option<String>,
    /// Status → the response object (a `$ref` to components.responses resolved).
    responses: BTreeMap<u16, Yaml>,
    request_schema: Option<Yaml>,
}

pub struct Api {
    pub doc: Yaml,
    pub ops: Vec<Op>,
    schemas: BTreeMap<String, Yaml>,
    pub error_codes: BTreeSet<String>,
}

/// The document, read once per test binary.
pub fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let path = manifest_dir().join("docs/openapi.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut docs = YamlLoader::load_from_str(&text)
            .unwrap_or_else(|e| panic!("docs/openapi.yaml is not valid YAML: {e}"));
        assert_eq!(docs.len(), 1, "docs/openapi.yaml holds one YAML document");
        Api::read(docs.remove(0))
    })
}

fn key_str(key: &Yaml, at: &str) -> String {
    match key {
        Yaml::String(s) => s.clone(),
        Yaml::Integer(i) => i.to_string(),
        other => panic!("openapi.yaml {at}: unexpected key {other:?}"),
    }
}

fn hash<'y>(node: &'y Yaml, at: &str) -> &'y yaml_rust2::yaml::Hash {
    node.as_hash()
        .unwrap_or_else(|| panic!("openapi.yaml: {at} must be a mapping, is {node:?}"))
}

/// The strings of a sequence (`enum:`, `required:`, a `type:` list).
fn strings(node: &Yaml, at: &str) -> Vec<String> {
    node.as_vec()
        .unwrap_or_else(|| panic!("openapi.yaml: {at} must be a sequence, is {node:?}"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("openapi.yaml: {at} holds a non-string {v:?}"))
                .to_string()
        })
        .collect()
}

fn present(node: &Yaml) -> Option<&Yaml> {
    (!node.is_badvalue()).then_some(node)
}

impl Api {
    fn read(doc: Yaml) -> Api {
        assert_eq!(doc["openapi"].as_str(), Some("3.1.0"), "openapi version");
        assert_eq!(doc["info"]["title"].as_str(), Some("hookd"));
        assert_eq!(doc["info"]["version"].as_str(), Some("0.1.0"));
        let components = &doc["components"];
        let section = |name: &str| -> BTreeMap<String, Yaml> {
            hash(&components[name], &format!("components.{name}"))
                .iter()
                .map(|(k, v)| (key_str(k, name), v.clone()))
                .collect()
        };
        let schemas = section("schemas");
        let responses = section("responses");
        let schemes = section("securitySchemes");
        let bearer = schemes.get("bearerAuth").expect("a bearerAuth scheme");
        assert_eq!(bearer["scheme"].as_str(), Some("bearer"));

        let mut ops = Vec::new();
        for (path, item) in hash(&doc["paths"], "paths") {
            let template = key_str(path, "paths");
            assert!(
                template.starts_with('/'),
                "openapi.yaml: path {template:?} must start with /"
            );
            for (key, op) in hash(item, &template) {
                let key = key_str(key, &template);
                if ["parameters", "summary", "description"].contains(&key.as_str()) {
                    continue;
                }
                let at = format!("{key} {template}");
                assert!(
                    METHODS.contains(&key.as_str()),
                    "openapi.yaml: unexpected key {key:?} under {template}"
                );
                let security = op["security"].as_vec().unwrap_or_else(|| {
                    panic!("openapi.yaml: {at} states no `security` (every operation must)")
                });
                let role = match security.as_slice() {
                    [] => None,
                    [requirement] => {
                        let roles = strings(&requirement["bearerAuth"], &format!("{at} security"));
                        assert_eq!(
                            roles.len(),
                            1,
                            "openapi.yaml: {at} needs exactly one role, not {roles:?}"
                        );
                        assert_eq!(hash(requirement, &at).len(), 1, "{at}: one scheme");
                        roles.into_iter().next()
                    }
                    more => panic!(
                        "openapi.yaml: {at} lists {} security requirements",
                        more.len()
                    ),
                };
                let mut statuses = BTreeMap::new();
                for (status, response) in hash(&op["responses"], &format!("{at} responses")) {
                    let status: u16 = key_str(status, &at)
                        .parse()
                        .unwrap_or_else(|e| panic!("openapi.yaml: {at}: status {status:?}: {e}"));
                    let response = match response["$ref"].as_str() {
                        Some(r) => {
                            let name = r
                                .strip_prefix("#/components/responses/")
                                .unwrap_or_else(|| panic!("openapi.yaml: {at}: bad $ref {r}"));
                            responses
                                .get(name)
                                .unwrap_or_else(|| panic!("openapi.yaml: {at}: no response {name}"))
                                .clone()
                        }
                        None => response.clone(),
                    };
                    statuses.insert(status, response);
                }
                let request_schema =
                    present(&op["requestBody"]["content"]["application/json"]["schema"]).cloned();
                ops.push(Op {
                    path: template.clone(),
                    method: key.to_uppercase(),
                    role,
                    responses: statuses,
                    request_schema,
                });
            }
        }
        let error_codes = strings(
            &schemas.get("Error").expect("components.schemas.Error")["properties"]["code"]["enum"],
            "components.schemas.Error.properties.code.enum",
        )
        .into_iter()
        .collect();
        Api {
            doc,
            ops,
            schemas,
            error_codes,
        }
    }

    pub fn templates(&self) -> BTreeSet<&str> {
        self.ops.iter().map(|o| o.path.as_str()).collect()
    }

    pub fn methods_of(&self, template: &str) -> BTreeSet<String> {
        self.ops
            .iter()
            .filter(|o| o.path == template)
            .map(|o| o.method.clone())
            .collect()
    }

    pub fn op(&self, template: &str, method: &str) -> Option<&Op> {
        self.ops
            .iter()
            .find(|o| o.path == template && o.method == method)
    }

    /// The documented path template an actual path matches (literal segments win).
    pub fn template_of(&self, path: &str) -> Option<&str> {
        let path = path.split('?').next().unwrap_or(path);
        let actual: Vec<&str> = path.split('/').collect();
        self.templates()
            .into_iter()
            .filter_map(|t| {
                let segments: Vec<&str> = t.split('/').collect();
                if segments.len() != actual.len() {
                    return None;
                }
                let mut literal = 0;
                for (s, a) in segments.iter().zip(&actual) {
                    if s.starts_with('{') && s.ends_with('}') {
                        if a.is_empty() {
                            return None;
                        }
                    } else if s == a {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, t))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, t)| t)
    }

    /// Resolves a `#/components/<section>/<name>` reference; panics on anything else.
    pub fn resolve(&self, reference: &str) -> &Yaml {
        let mut parts = reference.trim_start_matches("#/").split('/');
        let (Some("components"), Some(section), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            panic!("openapi.yaml: unsupported $ref {reference}");
        };
        let target = &self.doc["components"][section][name];
        assert!(
            !target.is_badvalue(),
            "openapi.yaml: dangling $ref {reference}"
        );
        target
    }

    pub fn schema(&self, reference: &str) -> &Yaml {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("openapi.yaml: not a schema $ref: {reference}"));
        self.schemas
            .get(name)
            .unwrap_or_else(|| panic!("openapi.yaml: no schema {name}"))
    }

    fn error_schema(&self) -> &Yaml {
        self.schema("#/components/schemas/Error")
    }

    /// The parts of an `allOf` as one object schema: the union of their `properties` and
    /// `required` keys (the document uses `allOf` only to extend an object schema, e.g.
    /// `Webhook` with the owner for the operator view).
    fn merge_all_of(&self, parts: &Yaml, at: &str) -> Yaml {
        let mut properties = yaml_rust2::yaml::Hash::new();
        let mut required = Vec::new();
        let mut todo: Vec<&Yaml> = parts
            .as_vec()
            .unwrap_or_else(|| panic!("openapi.yaml: {at} allOf must be a sequence"))
            .iter()
            .collect();
        while let Some(part) = todo.pop() {
            let part = match part["$ref"].as_str() {
                Some(r) => self.schema(r),
                None => part,
            };
            if let Some(more) = present(&part["allOf"]).and_then(Yaml::as_vec) {
                todo.extend(more);
            }
            if let Some(props) = present(&part["properties"]) {
                for (k, v) in hash(props, &format!("{at} allOf properties")) {
                    properties.insert(k.clone(), v.clone());
                }
            }
            if let Some(keys) = present(&part["required"]).and_then(Yaml::as_vec) {
                required.extend(keys.iter().cloned());
            }
        }
        let mut merged = yaml_rust2::yaml::Hash::new();
        merged.insert(Yaml::String("type".into()), Yaml::String("object".into()));
        merged.insert(Yaml::String("properties".into()), Yaml::Hash(properties));
        merged.insert(Yaml::String("required".into()), Yaml::Array(required));
        Yaml::Hash(merged)
    }

    /// Checks `value` against a schema: `allOf`, `$ref`, `type`, `enum`, object keys (every key
    /// documented, every required key present) and array items.
    pub fn validate(&self, node: &Yaml, value: &Value, at: &str, problems: &mut Vec<String>) {
        if let Some(parts) = present(&node["allOf"]) {
            self.validate(&self.merge_all_of(parts, at), value, at, problems);
        }
        if let Some(r) = node["$ref"].as_str() {
            self.validate(self.schema(r), value, at, problems);
        }
        if let Some(t) = present(&node["type"]) {
            let types = match t.as_str() {
                Some(one) => vec![one.to_string()],
                None => strings(t, &format!("{at} type")),
            };
            let fits = types.iter().any(|ty| match ty.as_str() {
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "object" => value.is_object(),
                "array" => value.is_array(),
                "null" => value.is_null(),
                other => panic!("openapi.yaml: unknown type {other} (at {at})"),
            });
            if !fits {
                problems.push(format!("{at}: {value} is not of type {types:?}"));
            }
        }
        if let (Some(e), Some(s)) = (present(&node["enum"]), value.as_str()) {
            let allowed = strings(e, &format!("{at} enum"));
            if !allowed.iter().any(|a| a == s) {
                problems.push(format!("{at}: {s:?} is not in the enum {allowed:?}"));
            }
        }
        if let (Some(props), Some(object)) = (present(&node["properties"]), value.as_object()) {
            for (k, v) in object {
                match present(&props[k.as_str()]) {
                    Some(p) => self.validate(p, v, &format!("{at}.{k}"), problems),
                    None => problems.push(format!("{at}: undocumented property {k:?}")),
                }
            }
            if let Some(required) = present(&node["required"]) {
                for k in strings(required, &format!("{at} required")) {
                    if !object.contains_key(&k) {
                        problems.push(format!("{at}: required property {k:?} is missing"));
                    }
                }
            }
        }
        // A map (`additionalProperties: <schema>`): every key not in `properties` fits it.
        if let (Some(extra @ Yaml::Hash(_)), Some(object)) =
            (present(&node["additionalProperties"]), value.as_object())
        {
            for (k, v) in object {
                if present(&node["properties"][k.as_str()]).is_none() {
                    self.validate(extra, v, &format!("{at}.{k}"), problems);
                }
            }
        }
        if let (Some(items), Some(array)) = (present(&node["items"]), value.as_array()) {
            for (i, v) in array.iter().enumerate() {
                self.validate(items, v, &format!("{at}[{i}]"), problems);
            }
        }
    }
}

/// Every `$ref` value anywhere in `node`.
pub fn all_refs(node: &Yaml, out: &mut Vec<String>) {
    match node {
        Yaml::Hash(h) => {
            for (k, v) in h {
                if k.as_str() == Some("$ref") {
                    out.push(
                        v.as_str()
                            .unwrap_or_else(|| panic!("openapi.yaml: $ref {v:?} is not a string"))
                            .to_string(),
                    );
                } else {
                    all_refs(v, out);
                }
            }
        }
        Yaml::Array(a) => a.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Requests.

pub struct Req<'r> {
    pub method: &'r str,
    pub path: &'r str,
    token: Option<&'r str>,
    /// Sent as `Authorization` as it is (overrides `token`).
    authorization: Option<&'r str>,
    content_type: Option<&'r str>,
    body: Option<&'r [u8]>,
    /// Other request headers, as they are.
    extra: Vec<(&'r str, &'r str)>,
}

impl<'r> Req<'r> {
    pub fn new(method: &'r str, path: &'r str) -> Req<'r> {
        Req {
            method,
            path,
            token: None,
            authorization: None,
            content_type: None,
            body: None,
            extra: Vec::new(),
        }
    }
    pub fn header(mut self, name: &'r str, value: &'r str) -> Self {
        self.extra.push((name, value));
        self
    }
    pub fn token(mut self, token: &'r str) -> Self {
        self.token = Some(token);
        self
    }
    pub fn authorization(mut self, value: &'r str) -> Self {
        self.authorization = Some(value);
        self
    }
    pub fn json(mut self, body: &'r str) -> Self {
        self.content_type = Some("application/json");
        self.body = Some(body.as_bytes());
        self
    }
    pub fn body(mut self, content_type: &'r str, body: &'r [u8]) -> Self {
        self.content_type = Some(content_type);
        self.body = Some(body);
        self
    }
}

fn error_message(resp: &Resp) -> String {
    serde_json::from_str::<Value>(&resp.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(String::from))
        .unwrap_or_default()
}

pub fn is_no_such_route(resp: &Resp) -> bool {
    resp.status == 404 && error_message(resp) == "no such route"
}

/// A concrete path for a template: placeholder ids of the right form.
pub fn placeholder(template: &str) -> String {
    let mut previous = "";
    template
        .split('/')
        .map(|s| {
            let out = if s.starts_with('{') {
                match previous {
                    "webhooks" => "wh-00000000-0000-4000-8000-000000000000".to_string(),
                    "deliveries" => "dlv-00000000-0000-4000-8000-000000000000".to_string(),
                    _ => "evt-placeholder".to_string(),
                }
            } else {
                s.to_string()
            };
            previous = s;
            out
        })
        .collect::<Vec<_>>()
        .join("/")
}

// ---------------------------------------------------------------------------------------
// The checker.

#[derive(Default)]
struct Observed {
    /// (template, method) → statuses answered.
    statuses: BTreeMap<(String, String), BTreeSet<u16>>,
    codes: BTreeSet<String>,
    problems: Vec<String>,
}

pub struct Checker<'h> {
    pub api: &'static Api,
    pub hookd: &'h Hookd,
    seen: Mutex<Observed>,
}

impl<'h> Checker<'h> {
    pub fn new(hookd: &'h Hookd) -> Checker<'h> {
        Checker {
            api: api(),
            hookd,
            seen: Mutex::new(Observed::default()),
        }
    }

    /// Sends `req` and records how its answer differs from the document.
    pub fn send(&self, req: Req) -> Resp {
        let bearer = req.token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = req.authorization.or(bearer.as_deref()) {
            headers.push(("Authorization", a));
        }
        if let Some(ct) = req.content_type {
            headers.push(("Content-Type", ct));
        }
        headers.extend_from_slice(&req.extra);
        let resp = common::http(self.hookd.addr, req.method, req.path, &headers, req.body);
        self.check(&req, &resp);
        resp
    }

    /// Sends `req` and asserts the status (the answer is checked against the document too).
    pub fn expect(&self, req: Req, status: u16, what: &str) -> Resp {
        let (method, path) = (req.method, req.path.to_string());
        let resp = self.send(req);
        assert_eq!(
            resp.status, status,
            "{what} ({method} {path}): {}",
            resp.body
        );
        resp
    }

    /// Like `expect`, and asserts the error `code` too.
    pub fn expect_error(&self, req: Req, status: u16, code: &str, what: &str) -> Resp {
        let resp = self.expect(req, status, what);
        assert_eq!(resp.json()["code"], code, "{what}: {}", resp.body);
        resp
    }

    /// Polls `webhook`'s delivery log (as USER) until `pred` holds; the list is non-empty.
    pub fn wait_deliveries(
        &self,
        webhook: &str,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let list = self
            .hookd
            .wait_deliveries(USER, webhook, Duration::from_secs(20), pred);
        assert!(!list.is_empty(), "{what}");
        list
    }

    fn check(&self, req: &Req, resp: &Resp) {
        let what = format!(
            "{} {} → {} {}",
            req.method, req.path, resp.status, resp.body
        );
        let mut problems = Vec::new();
        let json: Option<Value> = serde_json::from_str(&resp.body).ok();
        let mut seen = self.seen.lock().unwrap();
        if let Some(code) = json.as_ref().and_then(|v| v["code"].as_str()) {
            seen.codes.insert(code.to_string());
            if !self.api.error_codes.contains(code) {
                problems.push(format!("error code {code:?} is not in the Error enum"));
            }
        }
        if resp.status == 401 && resp.header("WWW-Authenticate") != Some("Bearer") {
            problems.push("401 without WWW-Authenticate: Bearer".into());
        }
        match self.api.template_of(req.path) {
            None => {
                if !is_no_such_route(resp) {
                    problems.push("an undocumented path must answer 404 \"no such route\"".into());
                }
                match &json {
                    Some(v) => self
                        .api
                        .validate(self.api.error_schema(), v, "body", &mut problems),
                    None => problems.push("the error answer is not JSON".into()),
                }
            }
            Some(template) => {
                self.check_documented(template, req, resp, json.as_ref(), &mut problems);
                seen.statuses
                    .entry((template.to_string(), req.method.to_string()))
                    .or_default()
                    .insert(resp.status);
            }
        }
        for p in problems {
            seen.problems.push(format!("{what}\n    {p}"));
        }
    }

    fn check_documented(
        &self,
        template: &str,
        req: &Req,
        resp: &Resp,
        json: Option<&Value>,
        problems: &mut Vec<String>,
    ) {
        let Some(op) = self.api.op(template, req.method) else {
            // Not a documented method of this path: 405 with exactly the documented Allow.
            if resp.status != 405 {
                problems.push(format!(
                    "{} is not documented for {template}; expected 405",
                    req.method
                ));
            }
            let allow: BTreeSet<String> = resp
                .header("Allow")
                .unwrap_or("")
                .split(',')
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            let documented = self.api.methods_of(template);
            if allow != documented {
                problems.push(format!(
                    "Allow {allow:?} differs from the documented methods {documented:?}"
                ));
            }
            if let Some(v) = json {
                self.api
                    .validate(self.api.error_schema(), v, "body", problems);
            }
            return;
        };
        let Some(response) = op.responses.get(&resp.status) else {
            problems.push(format!(
                "status {} is not documented for {} {template} (documented: {:?})",
                resp.status,
                req.method,
                op.responses.keys().collect::<Vec<_>>()
            ));
            return;
        };
        match present(&response["content"]) {
            None => {
                if !resp.body.is_empty() {
                    problems.push("documented without content, but hookd sent a body".into());
                }
            }
            Some(content) => {
                let media = resp
                    .header("Content-Type")
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                match present(&content[media.as_str()]) {
                    None => problems.push(format!(
                        "Content-Type {media:?} is not documented for this status"
                    )),
                    Some(m) => {
                        if let (Some(schema), true) =
                            (present(&m["schema"]), media == "application/json")
                        {
                            match json {
                                Some(v) => self.api.validate(schema, v, "body", problems),
                                None => problems.push("the body is not JSON".into()),
                            }
                        }
                    }
                }
            }
        }
        // A request hookd accepted must fit the documented request schema.
        if (200..300).contains(&resp.status)
            && let (Some(schema), Some(body)) = (&op.request_schema, req.body)
            && !body.is_empty()
        {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => self.api.validate(schema, &v, "request", problems),
                Err(e) => problems.push(format!("accepted a body that is not JSON: {e}")),
            }
        }
    }

    /// Fails on any answer that differed from the document, and unless every operation
    /// in `covers` was seen succeeding at least once.
    pub fn finish(self, covers: &[OpId]) {
        let seen = self.seen.into_inner().unwrap();
        let mut report = String::new();
        for ((t, m), statuses) in &seen.statuses {
            report.push_str(&format!("  {m:6} {t}: {statuses:?}\n"));
        }
        eprintln!("answers seen, by operation:\n{report}");
        assert!(
            seen.problems.is_empty(),
            "{} answers differ from docs/openapi.yaml:\n{}",
            seen.problems.len(),
            seen.problems.join("\n")
        );
        for code in &seen.codes {
            assert!(
                self.api.error_codes.contains(code),
                "code {code:?} undocumented"
            );
        }
        for (method, template) in covers {
            assert!(
                self.api.op(template, method).is_some(),
                "{method} {template} is claimed by a test but not documented"
            );
            let statuses = seen
                .statuses
                .get(&(template.to_string(), method.to_string()))
                .cloned()
                .unwrap_or_default();
            assert!(
                statuses.iter().any(|s| (200..300).contains(s)),
                "{method} {template} never succeeded in this test: {statuses:?}"
            );
        }
    }
}
