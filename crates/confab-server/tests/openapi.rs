//! The OpenAPI document at `/api/v1/openapi.json` (issue 4 item 11): it is
//! OpenAPI 3, self-contained, lists exactly the routes the server serves,
//! and its schemas describe the JSON the server really answers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod common;

use common::{Api, TestServer, assert_timestamp};
use confab_server::transport::rest::{METHOD_NOT_ALLOWED, NO_SUCH_ROUTE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Every (method, path) the server serves, written out by hand so that a
/// route added or dropped without updating this list (and the docs) fails.
const EXPECTED: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/ws"),
    ("GET", "/ws/chat"),
    ("GET", "/ws/chat/"),
    ("GET", "/ws/chat/{room_id}/"),
    ("GET", "/ws/sessions/{room_id}/"),
    ("GET", "/ws/assistant/"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/stats"),
    ("PUT", "/api/v1/users/{id}"),
    ("POST", "/api/v1/users/{id}/notify"),
    ("GET", "/api/v1/webhooks/failed"),
    ("GET", "/api/v1/dev/login"),
    ("POST", "/api/v1/dev/login"),
    ("POST", "/api/v1/webhooks/failed/retry"),
    ("GET", "/api/v1/rooms"),
    ("POST", "/api/v1/rooms"),
    ("GET", "/api/v1/rooms/{id}"),
    ("PATCH", "/api/v1/rooms/{id}"),
    ("DELETE", "/api/v1/rooms/{id}"),
    ("GET", "/api/v1/rooms/{id}/members"),
    ("POST", "/api/v1/rooms/{id}/members"),
    ("DELETE", "/api/v1/rooms/{id}/members/{user_id}"),
    ("GET", "/api/v1/rooms/{id}/rating"),
    ("POST", "/api/v1/rooms/{id}/rating"),
    ("POST", "/api/v1/rooms/{id}/commands"),
    ("GET", "/api/v1/rooms/{id}/messages"),
    ("POST", "/api/v1/rooms/{id}/messages"),
    ("PATCH", "/api/v1/rooms/{id}/messages/{message_id}"),
    ("DELETE", "/api/v1/rooms/{id}/messages/{message_id}"),
    ("POST", "/api/v1/rooms/{id}/read"),
    ("GET", "/api/v1/rooms/{id}/context"),
    ("POST", "/api/v1/attachments"),
    ("GET", "/api/v1/attachments/{id}"),
];

/// The HTTP methods an OpenAPI path item may hold operations under.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Fetches the document from the real server, without credentials.
async fn document(server: &TestServer) -> Value {
    let response = server
        .anonymous_api()
        .send(Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    response.json().await.unwrap()
}

/// The documented (METHOD, path) pairs.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("no paths") {
        for (key, _) in item.as_object().unwrap() {
            if METHODS.contains(&key.as_str()) {
                out.insert((key.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The operation object of (method, path).
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    op
}

/// Every `$ref` anywhere in `value`, with where it was found.
fn refs(value: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    out.push((at.to_owned(), child.as_str().unwrap().to_owned()));
                } else {
                    refs(child, &format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Resolves a local `$ref` (`#/components/schemas/Message`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

#[tokio::test]
async fn the_document_is_openapi_3_and_self_contained() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3."), "openapi: {version}");
    assert_eq!(doc["info"]["title"], "confab");
    assert!(doc["info"]["version"].is_string());

    let mut found = Vec::new();
    refs(&doc, "#", &mut found);
    assert!(found.len() > 20, "suspiciously few $refs: {found:?}");
    let dangling: Vec<_> = found
        .iter()
        .filter(|(_, r)| !r.starts_with("#/components/") || resolve(&doc, r).is_none())
        .collect();
    assert!(dangling.is_empty(), "unresolved $refs: {dangling:#?}");

    // The schemes a caller needs, and every operation names only those.
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer_jwt"]["type"], "http");
    assert_eq!(schemes["bearer_jwt"]["scheme"], "bearer");
    assert_eq!(schemes["bearer_jwt"]["bearerFormat"], "JWT");
    assert_eq!(schemes["server_key"]["type"], "http");
    assert_eq!(schemes["server_key"]["scheme"], "bearer");
    assert_eq!(schemes["acting_user"]["type"], "apiKey");
    assert_eq!(schemes["acting_user"]["in"], "header");
    assert!(
        schemes["acting_user"]["name"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("x-confab-user")
    );
    for (method, path) in operations(&doc) {
        let op = operation(&doc, &method, &path);
        for requirement in op["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes[name].is_object(),
                    "{method} {path}: unknown scheme {name}"
                );
            }
        }
        // Anything that needs a credential documents the refusal.
        let open = matches!(
            path.as_str(),
            "/healthz" | "/readyz" | "/metrics" | "/api/v1/openapi.json" | "/api/v1/dev/login"
        ) || path.starts_with("/ws");
        if !open {
            assert!(op["security"].is_array(), "{method} {path}: no security");
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: no 401"
            );
        } else if path.starts_with("/ws") {
            assert!(
                op["responses"]["101"].is_object(),
                "{method} {path}: no 101"
            );
            let text = op["description"].as_str().unwrap_or_default();
            assert!(text.contains("docs/protocol.md"), "{method} {path}: {op}");
        } else {
            assert!(
                op.get("security").is_none(),
                "{method} {path} needs no auth"
            );
        }
    }
    // Only the server key may create users.
    let put_user = operation(&doc, "PUT", "/api/v1/users/{id}");
    assert_eq!(put_user["security"], json!([{"server_key": []}]));
    // The upload is a multipart form with its `file` field.
    let upload = operation(&doc, "POST", "/api/v1/attachments");
    let form = &upload["requestBody"]["content"]["multipart/form-data"]["schema"];
    let form = resolve(&doc, form["$ref"].as_str().unwrap_or("#")).unwrap_or(form);
    assert_eq!(form["properties"]["file"]["type"], "string", "{form}");
    assert_eq!(form["properties"]["file"]["format"], "binary", "{form}");
}

#[tokio::test]
async fn the_document_lists_exactly_the_served_routes() {
    let server = TestServer::start().await;
    let documented = operations(&document(&server).await);
    let expected: BTreeSet<(String, String)> = EXPECTED
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "expected but not documented: {missing:#?}\ndocumented but not expected: {extra:#?}"
    );
}

/// The answer to a request no route takes: 404 with the fallback's message.
fn is_route_miss(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::NOT_FOUND && body["error"]["message"] == NO_SUCH_ROUTE
}

/// Status and JSON body (`null` if the body is not JSON).
async fn answer(api: &Api, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let response = api
        .send(Method::from_bytes(method.as_bytes()).unwrap(), path, body)
        .await;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let api = server.server_api();

    // The fallbacks are told apart from a handler's own answers.
    let (status, body) = answer(&api, "GET", "/api/v1/no-such-thing", None).await;
    assert!(is_route_miss(status, &body), "{status} {body}");
    let room = server.room("alice", &["bob"]).await;
    let (status, body) = answer(&api, "GET", "/api/v1/rooms/no-such-room", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        !is_route_miss(status, &body),
        "a handler's 404 is not a miss"
    );

    // Concrete ids for every path parameter.
    let (status, sent) = server
        .api("alice")
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let message = sent["message"]["id"].as_str().unwrap().to_owned();
    let (status, attachment) = server
        .api("alice")
        .upload("a.txt", "text/plain", b"hi")
        .await;
    assert_eq!(status, 201, "{attachment}");
    let attachment = attachment["id"].as_str().unwrap().to_owned();
    let concrete = |path: &str| {
        let id = if path.starts_with("/api/v1/attachments/") {
            &attachment
        } else if path.starts_with("/api/v1/users/") {
            "carol"
        } else {
            &room
        };
        path.replace("{id}", id)
            .replace("{message_id}", &message)
            .replace("{user_id}", "bob")
    };

    for (method, path) in operations(&doc) {
        let url = concrete(&path);
        let body = matches!(method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
        let (status, answer) = answer(&api, &method, &url, body).await;
        assert!(
            !is_route_miss(status, &answer) && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {url} (documented as {path}) is not served: {status} {answer}"
        );
    }

    // A few combinations nobody documents are refused as such.
    let documented = operations(&doc);
    for (method, path, miss) in [
        ("PUT", "/api/v1/rooms", false),
        ("DELETE", "/api/v1/me", false),
        ("POST", "/healthz", false),
        ("GET", "/api/v1/users/carol", false),
        ("GET", "/api/v1/rooms/x/read", false),
        ("PUT", "/api/v1/openapi.json", false),
        ("GET", "/api/v1/rooms/x/members/bob", false),
        ("GET", "/api/v1/openapi.yaml", true),
        ("GET", "/api/v2/rooms", true),
        ("GET", "/api/v1/rooms/x/y/z", true),
    ] {
        assert!(!documented.contains(&(method.to_owned(), path.to_owned())));
        let (status, body) = answer(&api, method, path, None).await;
        if miss {
            assert!(
                is_route_miss(status, &body),
                "{method} {path}: {status} {body}"
            );
        } else {
            assert_eq!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            assert_eq!(body["error"]["message"], METHOD_NOT_ALLOWED);
        }
    }
}

/// Checks `value` against a schema of the document; returns what does not
/// match, with where. Understands what the document uses (`$ref`, `type`
/// with `null`, `oneOf`/`anyOf`/`allOf`, `enum`, `properties`, `required`,
/// `additionalProperties`, `items`, `format: date-time`) and treats a
/// property the schema does not name as a mismatch, so that fields added to
/// an answer without the document fail here too.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        match resolve(doc, reference) {
            Some(target) => check(doc, target, value, at, errors),
            None => errors.push(format!("{at}: unresolved {reference}")),
        }
        return;
    }
    for (keyword, need_all) in [("allOf", true), ("oneOf", false), ("anyOf", false)] {
        if let Some(options) = schema[keyword].as_array() {
            let results: Vec<Vec<String>> = options
                .iter()
                .map(|option| {
                    let mut e = Vec::new();
                    check(doc, option, value, at, &mut e);
                    e
                })
                .collect();
            let ok = if need_all {
                results.iter().all(Vec::is_empty)
            } else {
                results.iter().any(Vec::is_empty)
            };
            if !ok {
                errors.push(format!("{at}: {value} matches no {keyword} of {schema}"));
            }
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
            other => panic!("{at}: odd type {other}"),
        };
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("{at}: unknown type {other}"),
        });
        if !fits {
            errors.push(format!("{at}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} not in {allowed:?}"));
    }
    if schema["format"] == "date-time" && value.is_string() {
        assert_timestamp(value);
    }
    if let (Some(object), true) = (value.as_object(), schema.get("properties").is_some()) {
        let properties = schema["properties"].as_object().unwrap();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                errors.push(format!("{at}: required `{name}` is missing"));
            }
        }
        for (name, child) in object {
            match properties.get(name) {
                Some(property) => check(doc, property, child, &format!("{at}.{name}"), errors),
                None if schema.get("additionalProperties").is_some() => {}
                None => errors.push(format!("{at}: `{name}` is not documented")),
            }
        }
    } else if let (Some(object), Some(extra)) = (
        value.as_object(),
        schema.get("additionalProperties").filter(|e| e.is_object()),
    ) {
        for (name, child) in object {
            check(doc, extra, child, &format!("{at}.{name}"), errors);
        }
    }
    if let (Some(items), Some(item_schema)) = (value.as_array(), schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            check(doc, item_schema, item, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Tracks which documented JSON answers a test has checked.
struct Checker<'a> {
    doc: &'a Value,
    checked: BTreeSet<(String, String, String)>,
}

impl Checker<'_> {
    /// Sends a request and checks the answer: its status must be documented
    /// for the operation and, for JSON answers, the body must match the
    /// documented schema. Returns the body.
    async fn call(
        &mut self,
        api: &Api,
        method: &str,
        template: &str,
        url: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, answer) = answer(api, method, url, body).await;
        let op = operation(self.doc, method, template);
        let code = status.as_str().to_owned();
        let response = &op["responses"][&code];
        assert!(
            response.is_object(),
            "{method} {url} answered {status}, which {template} does not document: {answer}"
        );
        if let Some(schema) = response["content"]["application/json"].get("schema") {
            let mut errors = Vec::new();
            check(self.doc, schema, &answer, "$", &mut errors);
            assert!(
                errors.is_empty(),
                "{method} {url} → {status} does not match its schema:\n{}\n{answer:#}",
                errors.join("\n")
            );
            self.checked
                .insert((method.to_owned(), template.to_owned(), code));
        }
        (status, answer)
    }

    /// Like [`Checker::call`] where the URL is the template.
    async fn at(
        &mut self,
        api: &Api,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call(api, method, path, path, body).await
    }
}

#[tokio::test]
async fn every_documented_json_answer_matches_its_schema() {
    let server = TestServer::start().await;
    let doc = document(&server).await;
    let mut c = Checker {
        doc: &doc,
        checked: BTreeSet::new(),
    };
    let alice = server.api("alice");
    let admin = server.server_api();

    c.at(&alice, "GET", "/healthz", None).await;
    c.at(&alice, "GET", "/readyz", None).await;
    c.at(&alice, "GET", "/api/v1/openapi.json", None).await;
    c.at(&alice, "GET", "/api/v1/me", None).await;
    let (status, _) = c
        .call(
            &admin,
            "PUT",
            "/api/v1/users/{id}",
            "/api/v1/users/bob",
            Some(json!({"name": "Bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.call(
        &admin,
        "PUT",
        "/api/v1/users/{id}",
        "/api/v1/users/carol",
        Some(json!({})),
    )
    .await;
    let notify = "/api/v1/users/{id}/notify";
    let (status, _) = c
        .call(
            &admin,
            "POST",
            notify,
            "/api/v1/users/bob/notify",
            Some(json!({"event": "order.shipped", "data": {"order": 7}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    for (api, url, body, expected) in [
        (
            &alice,
            "/api/v1/users/bob/notify",
            json!({"event": "x"}),
            403,
        ),
        (
            &admin,
            "/api/v1/users/nobody/notify",
            json!({"event": "x"}),
            404,
        ),
        (
            &admin,
            "/api/v1/users/bob/notify",
            json!({"event": ""}),
            422,
        ),
    ] {
        let (status, _) = c.call(api, "POST", notify, url, Some(body)).await;
        assert_eq!(status.as_u16(), expected, "{url}");
    }
    // The dev sign-in (on: the test server generated its secret and
    // listens on loopback).
    let dev = "/api/v1/dev/login";
    let (status, _) = c.call(&alice, "GET", dev, dev, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c
        .call(&alice, "POST", dev, dev, Some(json!({"name": "Dev User"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c
        .call(&alice, "POST", dev, dev, Some(json!({"name": ""})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Failed webhook events (none here): the server key's alone.
    let failed = "/api/v1/webhooks/failed";
    let (status, _) = c.call(&admin, "GET", failed, failed, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c.call(&alice, "GET", failed, failed, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let retry = "/api/v1/webhooks/failed/retry";
    let (status, _) = c.call(&admin, "POST", retry, retry, Some(json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = c
        .call(&admin, "POST", retry, retry, Some(json!({"ids": 7})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A room with metadata, a reply, an upload, a location: the optional
    // parts of a message filled in, and left out.
    let (status, room) = c
        .at(
            &alice,
            "POST",
            "/api/v1/rooms",
            Some(json!({"name": "r", "members": ["bob"], "metadata": {"job": 45}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = room["id"].as_str().unwrap().to_owned();
    let direct = json!({"room_type": "direct", "members": ["bob"]});
    let (status, _) = c
        .at(&alice, "POST", "/api/v1/rooms", Some(direct.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = c.at(&alice, "POST", "/api/v1/rooms", Some(direct)).await;
    assert_eq!(status, StatusCode::OK, "the existing direct room");

    let room_path = |tail: &str| format!("/api/v1/rooms/{id}{tail}");
    let messages = room_path("/messages");
    let (status, first) = c
        .call(
            &alice,
            "POST",
            "/api/v1/rooms/{id}/messages",
            &messages,
            Some(json!({"content": "hello", "client_msg_id": "c1", "metadata": {"k": "v"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let first_id = first["message"]["id"].as_str().unwrap().to_owned();
    let (status, attachment) = alice.upload("notes.txt", "text/plain", b"hello").await;
    assert_eq!(status, 201);
    let mut errors = Vec::new();
    let upload_ok = &operation(&doc, "POST", "/api/v1/attachments")["responses"]["201"];
    check(
        &doc,
        &upload_ok["content"]["application/json"]["schema"],
        &attachment,
        "$",
        &mut errors,
    );
    assert!(errors.is_empty(), "upload answer: {errors:?} {attachment}");
    c.checked
        .insert(("POST".into(), "/api/v1/attachments".into(), "201".into()));
    let attachment_id = attachment["id"].as_str().unwrap();
    for body in [
        json!({"content": "re", "reply_to": first_id}),
        json!({"message_type": "file", "attachment_id": attachment_id}),
        json!({"message_type": "location", "location": {"lat": 52.5, "lng": 13.4}}),
        json!({"content": "hello", "client_msg_id": "c1"}),
    ] {
        c.call(
            &alice,
            "POST",
            "/api/v1/rooms/{id}/messages",
            &messages,
            Some(body),
        )
        .await;
    }
    let message_path = format!("{messages}/{first_id}");
    c.call(
        &alice,
        "PATCH",
        "/api/v1/rooms/{id}/messages/{message_id}",
        &message_path,
        Some(json!({"content": "edited"})),
    )
    .await;
    let bob = server.api("bob");
    let (status, page) = c
        .call(
            &bob,
            "GET",
            "/api/v1/rooms/{id}/messages",
            &format!("{messages}?limit=100"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["messages"].as_array().unwrap().len(), 4, "{page}");
    c.call(&bob, "GET", "/api/v1/rooms", "/api/v1/rooms", None)
        .await;
    c.call(&bob, "GET", "/api/v1/rooms/{id}", &room_path(""), None)
        .await;
    c.call(
        &bob,
        "POST",
        "/api/v1/rooms/{id}/read",
        &room_path("/read"),
        Some(json!({"up_to_seq": 2})),
    )
    .await;
    c.call(
        &bob,
        "GET",
        "/api/v1/rooms/{id}/context",
        &room_path("/context"),
        None,
    )
    .await;
    let (status, help) = c
        .call(
            &bob,
            "POST",
            "/api/v1/rooms/{id}/commands",
            &room_path("/commands"),
            Some(json!({"text": "/help"})),
        )
        .await;
    assert_eq!(
        (status, &help["ok"]),
        (StatusCode::OK, &json!(true)),
        "{help}"
    );
    c.call(
        &alice,
        "PATCH",
        "/api/v1/rooms/{id}",
        &room_path(""),
        Some(json!({"name": "renamed"})),
    )
    .await;
    c.call(
        &alice,
        "POST",
        "/api/v1/rooms/{id}/members",
        &room_path("/members"),
        Some(json!({"user_id": "carol", "role": "viewer"})),
    )
    .await;
    c.call(
        &alice,
        "GET",
        "/api/v1/rooms/{id}/members",
        &room_path("/members"),
        None,
    )
    .await;
    let (status, _) = c
        .call(
            &alice,
            "DELETE",
            "/api/v1/rooms/{id}/members/{user_id}",
            &room_path("/members/carol"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    c.call(
        &alice,
        "DELETE",
        "/api/v1/rooms/{id}/messages/{message_id}",
        &message_path,
        None,
    )
    .await;
    // An assistant session, read before and after it is rated.
    let (status, session) = c
        .at(
            &alice,
            "POST",
            "/api/v1/rooms",
            Some(json!({"room_type": "assistant"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let rating_path = format!("/api/v1/rooms/{}/rating", session["id"].as_str().unwrap());
    let rating_template = "/api/v1/rooms/{id}/rating";
    let (status, unrated) = c
        .call(&alice, "GET", rating_template, &rating_path, None)
        .await;
    assert_eq!((status, &unrated["rating"]), (StatusCode::OK, &Value::Null));
    let (status, _) = c
        .call(
            &alice,
            "POST",
            rating_template,
            &rating_path,
            Some(json!({"rating": 5, "feedback": "spot on"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    c.call(&alice, "GET", rating_template, &rating_path, None)
        .await;
    c.at(&admin, "GET", "/api/v1/stats", None).await;
    c.call(&alice, "DELETE", "/api/v1/rooms/{id}", &room_path(""), None)
        .await;

    // Some error answers, against the error body's schema.
    c.at(&server.anonymous_api(), "GET", "/api/v1/me", None)
        .await;
    c.call(
        &bob,
        "GET",
        "/api/v1/rooms/{id}",
        "/api/v1/rooms/nope",
        None,
    )
    .await;
    c.call(
        &bob,
        "PUT",
        "/api/v1/users/{id}",
        "/api/v1/users/bob",
        Some(json!({})),
    )
    .await;
    let (status, _) = c
        .at(
            &alice,
            "POST",
            "/api/v1/rooms",
            Some(json!({"id": id, "members": []})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Every documented 2xx JSON answer was exercised.
    let documented_ok: BTreeSet<(String, String, String)> = operations(&doc)
        .into_iter()
        .flat_map(|(method, path)| {
            let op = operation(&doc, &method, &path);
            op["responses"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(code, r)| {
                    code.starts_with('2') && r["content"]["application/json"].is_object()
                })
                .map(|(code, _)| (method.clone(), path.clone(), code.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let unchecked: Vec<_> = documented_ok.difference(&c.checked).collect();
    assert!(
        unchecked.is_empty(),
        "2xx JSON answers never checked: {unchecked:#?}"
    );
}
