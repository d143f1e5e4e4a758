//! Events: list (namespaced and across namespaces), get and watch, with the field selectors
//! `kubectl describe` uses (`involvedObject.uid`, `.name`, `.namespace`, `.kind`), served from
//! the event recorder's store (`pkg/registry/core/event`).

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Event;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::table::{self, EVENT_COLUMNS, IncludeObject};
use super::watch::{self, Encoder, WATCH_BUFFER};
use super::{ListQuery, json, paginate, wants_table};
use crate::events::WatchEvent;
use crate::server::ServerState;
use crate::server::status::ApiError;

/// The field selectors of the event registry (`event.ToSelectableFields`).
const EVENT_FIELDS: [&str; 13] = [
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

pub(super) fn routes() -> Router<ServerState> {
    Router::new()
        .route("/api/v1/events", get(list_all))
        .route(
            "/api/v1/namespaces/{namespace}/events",
            get(list_namespaced),
        )
        .route(
            "/api/v1/namespaces/{namespace}/events/{name}",
            get(get_event),
        )
}

fn event_field(e: &Event, f: &str) -> String {
    let o = &e.involved_object;
    match f {
        "metadata.name" => e.metadata.name.clone(),
        "metadata.namespace" => e.metadata.namespace.clone(),
        "involvedObject.kind" => o.kind.clone(),
        "involvedObject.namespace" => o.namespace.clone(),
        "involvedObject.name" => o.name.clone(),
        "involvedObject.uid" => o.uid.clone(),
        "involvedObject.apiVersion" => o.api_version.clone(),
        "involvedObject.resourceVersion" => o.resource_version.clone(),
        "involvedObject.fieldPath" => o.field_path.clone(),
        "reason" => e.reason.clone(),
        "reportingComponent" => e.reporting_component.clone(),
        "source" => e.source.as_ref().and_then(|s| s.component.clone()),
        "type" => e.type_.clone(),
        _ => None,
    }
    .unwrap_or_default()
}

fn matches(e: &Event, namespace: Option<&str>, q: &ListQuery) -> bool {
    namespace.is_none_or(|ns| e.metadata.namespace.as_deref() == Some(ns))
        && q.fields.matches(|f| event_field(e, f))
        && q.labels.matches(e.metadata.labels.as_ref())
}

fn key(e: &Event) -> String {
    format!(
        "{}/{}",
        e.metadata.namespace.as_deref().unwrap_or_default(),
        e.metadata.name.as_deref().unwrap_or_default()
    )
}

fn rv_of(e: &Event) -> u64 {
    e.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn parse(query: Pairs) -> Result<ListQuery, ApiError> {
    let Query(pairs) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = ListQuery::parse(&pairs)?;
    q.fields.check(&EVENT_FIELDS)?;
    Ok(q)
}

async fn list_all(State(s): State<ServerState>, headers: HeaderMap, query: Pairs) -> Response {
    list(s, None, &headers, query).unwrap_or_else(IntoResponse::into_response)
}

async fn list_namespaced(
    State(s): State<ServerState>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    query: Pairs,
) -> Response {
    list(s, Some(namespace), &headers, query).unwrap_or_else(IntoResponse::into_response)
}

fn list(
    s: ServerState,
    namespace: Option<String>,
    headers: &HeaderMap,
    query: Pairs,
) -> Result<Response, ApiError> {
    let q = parse(query)?;
    let as_table = wants_table(headers).then_some(q.include);
    if q.watch {
        return Ok(watch_events(s, namespace, q, as_table));
    }
    let mut events: Vec<Event> = s
        .recorder
        .list()
        .into_iter()
        .filter(|e| matches(e, namespace.as_deref(), &q))
        .collect();
    events.sort_by_key(key);
    let rv = events.iter().map(rv_of).max().unwrap_or(0).to_string();
    let (page, next) = paginate(events, &q, key);
    let mut meta = json!({"resourceVersion": rv});
    if let Some(n) = next {
        meta["continue"] = json!(n);
    }
    let now = Timestamp::now();
    Ok(json(match as_table {
        Some(include) => {
            let rows = page
                .iter()
                .map(|e| table::row(table::event_cells(e, now), None, e, include))
                .collect();
            let mut t = table::table(Some(&EVENT_COLUMNS), rows, &rv);
            t["metadata"] = meta;
            t
        }
        None => json!({"kind": "EventList", "apiVersion": "v1", "metadata": meta, "items": page}),
    }))
}

async fn get_event(
    State(s): State<ServerState>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    query: Pairs,
) -> Response {
    let result = (|| {
        let q = parse(query)?;
        let e = s
            .recorder
            .list()
            .into_iter()
            .find(|e| {
                e.metadata.namespace.as_deref() == Some(namespace.as_str())
                    && e.metadata.name.as_deref() == Some(name.as_str())
            })
            .ok_or_else(|| ApiError::not_found("events", &name))?;
        Ok::<_, ApiError>(json(if wants_table(&headers) {
            let rows = vec![table::row(
                table::event_cells(&e, Timestamp::now()),
                None,
                &e,
                q.include,
            )];
            table::table(Some(&EVENT_COLUMNS), rows, &rv_of(&e).to_string())
        } else {
            serde_json::to_value(&e).unwrap_or_default()
        }))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn watch_events(
    s: ServerState,
    namespace: Option<String>,
    q: ListQuery,
    as_table: Option<IncludeObject>,
) -> Response {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    let mut changes = s.recorder.subscribe();
    tokio::spawn(async move {
        let mut enc = Encoder::new(as_table, &EVENT_COLUMNS);
        let start = q.resource_version.unwrap_or(0);
        let mut last = start;
        let mut initial: Vec<Event> = s
            .recorder
            .list()
            .into_iter()
            .filter(|e| matches(e, namespace.as_deref(), &q) && (start == 0 || rv_of(e) > start))
            .collect();
        initial.sort_by_key(rv_of);
        for e in initial {
            last = last.max(rv_of(&e));
            let now = Timestamp::now();
            let type_ = if start == 0 { "ADDED" } else { "MODIFIED" };
            let l = enc.encode(
                type_,
                &e,
                || table::event_cells(&e, now),
                None,
                &rv_of(&e).to_string(),
            );
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let deadline = q.timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let (type_, e) = tokio::select! {
                ev = changes.recv() => match ev {
                    Ok(WatchEvent::Added(e)) => ("ADDED", e),
                    Ok(WatchEvent::Modified(e)) => ("MODIFIED", e),
                    Ok(WatchEvent::Deleted(e)) => ("DELETED", e),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(watch::expired(start)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tx.closed() => return,
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return,
            };
            if (type_ != "DELETED" && rv_of(&e) <= last) || !matches(&e, namespace.as_deref(), &q) {
                continue;
            }
            last = last.max(rv_of(&e));
            let now = Timestamp::now();
            let l = enc.encode(
                type_,
                &e,
                || table::event_cells(&e, now),
                None,
                &rv_of(&e).to_string(),
            );
            if tx.send(l).await.is_err() {
                return;
            }
        }
    });
    watch::response(rx)
}
