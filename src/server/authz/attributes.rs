//! What a request asks for, in the authorizer's words (`authorizer.Attributes`).
//!
//! Two mappings share one port here, as two servers do in a cluster:
//! - the kubelet's own paths (`/pods`, `/stats/summary`, `/run/...`) map as the kubelet's
//!   `nodeAuthorizerAttributesGetter.GetRequestAttributes` (`pkg/kubelet/server/auth.go`) maps
//!   them: resource `nodes`, name = the node, API group `""`, verb from the HTTP method, and a
//!   subresource from the path. We follow the `KubeletFineGrainedAuthz` form (alpha in 1.32,
//!   beta and on from 1.33): `/pods`, `/runningpods`, `/healthz` and `/configz` are checked as
//!   `nodes/pods`, `nodes/healthz`, `nodes/configz` first and `nodes/proxy` second (either
//!   allows), so a policy written for the older kubelet (`nodes/proxy`) keeps working;
//! - the API-server paths the facade serves (`/api/...`, `/apis/...`, `/version`, `/openapi`)
//!   map as the API server's `RequestInfoFactory.NewRequestInfo`
//!   (`k8s.io/apiserver/pkg/endpoints/request/requestinfo.go`): namespaces, resources,
//!   subresources, `list`/`watch` for collections, and non-resource URLs for discovery.
//!
//! Paths are taken as sent (percent escapes are not decoded): a name or namespace spelled with
//! escapes matches no binding and is denied, never widened. The facade refuses such names anyway.

use axum::http::Method;

/// `authorizer.AttributesRecord`: one thing a user asks to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `get`, `list`, `watch`, `create`, ... (resource requests) or the lower-cased HTTP
    /// method (non-resource requests).
    pub verb: String,
    /// Whether this names a resource (else a non-resource URL, [`Self::path`]).
    pub resource_request: bool,
    /// The namespace; empty for cluster-scoped resources and cluster-wide lists.
    pub namespace: String,
    /// The API group (`""` is the core group).
    pub api_group: String,
    /// The API version (`v1`); informational, RBAC does not match on it.
    pub api_version: String,
    /// `pods`, `nodes`, ...
    pub resource: String,
    /// `log`, `exec`, `proxy`, ... or empty.
    pub subresource: String,
    /// The object's name; empty for collections.
    pub name: String,
    /// The request path.
    pub path: String,
}

impl Attributes {
    /// `resource/subresource` (RBAC's combined resource).
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// Which server a path belongs to: it decides both the mapping and the wording of a denial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// The kubelet's own API: `Forbidden (user=..., verb=..., resource=..., subresource(s)=[...])`.
    Kubelet,
    /// The API-server facade: `pods "x" is forbidden: User "bob" cannot ...`.
    ApiServer,
}

/// What must be allowed for a request to go through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The server whose rules produced the attributes.
    pub server: Server,
    /// The attributes to authorize.
    pub attributes: Vec<Attributes>,
    /// `true`: every one must be allowed (the API server's compound check on connect
    /// upgrades); `false`: any one suffices (the kubelet's fine-grained subresources).
    pub all: bool,
}

/// The kubelet's `isSubpath`: `path` is `prefix` or below it.
fn is_subpath(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// The verb the kubelet derives from the method (an unknown method gives an empty verb, which
/// only a `*` verb matches).
fn kubelet_verb(method: &Method) -> &'static str {
    match *method {
        Method::POST => "create",
        // The kubelet's switch has no HEAD; go-restful answers HEAD as GET, so we map it as
        // the API server does rather than leave the verb empty.
        Method::GET | Method::HEAD => "get",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "",
    }
}

/// Whether a path is served by the API-server facade rather than the kubelet's own API.
pub fn is_api_server_path(path: &str) -> bool {
    ["/api", "/apis", "/version", "/openapi"]
        .iter()
        .any(|p| is_subpath(path, p))
}

/// The check for a request: the kubelet's mapping for its own paths, the API server's for the
/// facade's.
pub fn request_check(method: &Method, path: &str, query: Option<&str>, node: &str) -> Check {
    if is_api_server_path(path) {
        api_server_check(method, path, query)
    } else {
        kubelet_check(method, path, node)
    }
}

/// `GetRequestAttributes` of the kubelet, with `KubeletFineGrainedAuthz` on.
pub fn kubelet_check(method: &Method, path: &str, node: &str) -> Check {
    let mut subresources = Vec::new();
    if is_subpath(path, "/pods") || is_subpath(path, "/runningpods") {
        subresources.push("pods");
    } else if is_subpath(path, "/healthz") {
        subresources.push("healthz");
    } else if is_subpath(path, "/configz") {
        subresources.push("configz");
    }
    subresources.push(if is_subpath(path, "/stats") {
        "stats"
    } else if is_subpath(path, "/metrics") {
        "metrics"
    } else if is_subpath(path, "/logs") {
        "log"
    } else if is_subpath(path, "/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    });
    let verb = kubelet_verb(method);
    Check {
        server: Server::Kubelet,
        attributes: subresources
            .into_iter()
            .map(|sub| Attributes {
                verb: verb.to_string(),
                resource_request: true,
                namespace: String::new(),
                api_group: String::new(),
                api_version: "v1".to_string(),
                resource: "nodes".to_string(),
                subresource: sub.to_string(),
                name: node.to_string(),
                path: path.to_string(),
            })
            .collect(),
        all: false,
    }
}

/// The first value of a query parameter (raw, as sent).
fn query_value<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then_some(v)
    })
}

/// The name an exact `metadata.name` field selector asks for (`RequiresExactMatch`), as sent
/// (`%3D` is the `=` kubectl encodes).
fn field_selector_name(query: Option<&str>) -> Option<String> {
    let raw = query_value(query, "fieldSelector")?;
    let decoded = raw
        .replace("%3D", "=")
        .replace("%3d", "=")
        .replace("%2C", ",")
        .replace("%2c", ",");
    decoded.split(',').find_map(|term| {
        let value = term
            .strip_prefix("metadata.name==")
            .or_else(|| term.strip_prefix("metadata.name="))?;
        // `IsValidPathSegmentName`: a name that could not be a path segment is not used.
        (!value.is_empty() && value != "." && value != ".." && !value.contains(['/', '%']))
            .then(|| value.to_string())
    })
}

/// The API server's `NewRequestInfo`, plus its compound `create` check on connect upgrades.
pub fn api_server_check(method: &Method, path: &str, query: Option<&str>) -> Check {
    let info = request_info(method, path, query);
    let mut attributes = vec![info.clone()];
    // A WebSocket upgrade of exec/attach/portforward is a GET, which RequestInfo calls `get`;
    // the API server also requires `create` on it (`AuthorizePodWebsocketUpgradeCreatePermission`,
    // on by default from 1.35; 1.32 checked `get` alone). We take the stricter, newer rule: a
    // read-only `get *` must not open a shell.
    if info.resource_request
        && info.verb == "get"
        && info.api_group.is_empty()
        && info.resource == "pods"
        && matches!(info.subresource.as_str(), "exec" | "attach" | "portforward")
    {
        attributes.push(Attributes {
            verb: "create".to_string(),
            ..info
        });
    }
    Check {
        server: Server::ApiServer,
        attributes,
        all: true,
    }
}

/// `RequestInfoFactory.NewRequestInfo` (prefixes `api` and `apis`; `api` has no group).
pub fn request_info(method: &Method, path: &str, query: Option<&str>) -> Attributes {
    let mut info = Attributes {
        verb: method.as_str().to_ascii_lowercase(),
        path: path.to_string(),
        ..Default::default()
    };
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let parts: Vec<&str> = if parts == [""] { Vec::new() } else { parts };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return info;
    }
    let mut rest = &parts[1..];
    if parts[0] == "apis" {
        if rest.len() < 3 {
            return info;
        }
        info.api_group = rest[0].to_string();
        rest = &rest[1..];
    }
    info.resource_request = true;
    info.api_version = rest[0].to_string();
    rest = &rest[1..];

    // `/watch/...` and `/proxy/...` are verbs spelled in the path.
    if matches!(rest[0], "watch" | "proxy") {
        if rest.len() < 2 {
            // The API server answers this with an error; nothing is granted for it here.
            info.verb = rest[0].to_string();
            return info;
        }
        info.verb = rest[0].to_string();
        rest = &rest[1..];
    } else {
        info.verb = match *method {
            Method::POST => "create",
            Method::GET | Method::HEAD => "get",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "",
        }
        .to_string();
    }

    if rest[0] == "namespaces" && rest.len() > 1 {
        info.namespace = rest[1].to_string();
        // `namespaces/{ns}/status` and `/finalize` are the namespace's own subresources.
        if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
            rest = &rest[2..];
        }
    }
    if rest.len() >= 3 && info.verb != "proxy" {
        info.subresource = rest[2].to_string();
    }
    if rest.len() >= 2 {
        info.name = rest[1].to_string();
    }
    info.resource = rest[0].to_string();

    if info.name.is_empty() && info.verb == "get" {
        let watch = query_value(query, "watch")
            .is_some_and(|v| !(v == "0" || v.eq_ignore_ascii_case("false")));
        info.verb = if watch { "watch" } else { "list" }.to_string();
        if let Some(name) = field_selector_name(query) {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_string();
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subresources(c: &Check) -> Vec<&str> {
        c.attributes
            .iter()
            .map(|a| a.subresource.as_str())
            .collect()
    }

    #[test]
    fn kubelet_paths() {
        // (method, path, verb, subresources in order)
        let cases: &[(Method, &str, &str, &[&str])] = &[
            (Method::GET, "/stats/summary", "get", &["stats"]),
            (Method::GET, "/stats", "get", &["stats"]),
            (Method::GET, "/statsx", "get", &["proxy"]),
            (Method::GET, "/metrics", "get", &["metrics"]),
            (Method::GET, "/metrics/resource", "get", &["metrics"]),
            (Method::GET, "/metrics/probes", "get", &["metrics"]),
            (Method::GET, "/logs/syslog", "get", &["log"]),
            (
                Method::POST,
                "/checkpoint/ns/p/c",
                "create",
                &["checkpoint"],
            ),
            (Method::GET, "/pods", "get", &["pods", "proxy"]),
            (Method::GET, "/pods/", "get", &["pods", "proxy"]),
            (Method::GET, "/runningpods/", "get", &["pods", "proxy"]),
            (Method::GET, "/healthz", "get", &["healthz", "proxy"]),
            (
                Method::GET,
                "/healthz/syncloop",
                "get",
                &["healthz", "proxy"],
            ),
            (Method::GET, "/configz", "get", &["configz", "proxy"]),
            (Method::POST, "/run/default/web/main", "create", &["proxy"]),
            (Method::POST, "/exec/default/web/main", "create", &["proxy"]),
            (Method::GET, "/exec/default/web/main", "get", &["proxy"]),
            (Method::GET, "/attach/default/web/main", "get", &["proxy"]),
            (
                Method::POST,
                "/portForward/default/web",
                "create",
                &["proxy"],
            ),
            (
                Method::GET,
                "/containerLogs/default/web/main",
                "get",
                &["proxy"],
            ),
            (Method::GET, "/debug/node", "get", &["proxy"]),
            (Method::GET, "/spec/", "get", &["proxy"]),
            (Method::PUT, "/x", "update", &["proxy"]),
            (Method::PATCH, "/x", "patch", &["proxy"]),
            (Method::DELETE, "/x", "delete", &["proxy"]),
            (Method::HEAD, "/x", "get", &["proxy"]),
            (Method::OPTIONS, "/x", "", &["proxy"]),
        ];
        for (method, path, verb, subs) in cases {
            let c = request_check(method, path, None, "node-a");
            assert_eq!(c.server, Server::Kubelet, "{path}");
            assert!(!c.all, "{path}");
            assert_eq!(subresources(&c), *subs, "{method} {path}");
            for a in &c.attributes {
                assert_eq!(a.verb, *verb, "{method} {path}");
                assert_eq!(
                    (
                        a.resource.as_str(),
                        a.name.as_str(),
                        a.api_group.as_str(),
                        a.namespace.as_str()
                    ),
                    ("nodes", "node-a", "", ""),
                    "{path}"
                );
                assert!(a.resource_request);
            }
        }
    }

    #[test]
    fn api_server_paths() {
        // (method, path, query, verb, namespace, group, resource, subresource, name)
        type Case<'a> = (
            Method,
            &'a str,
            Option<&'a str>,
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                None,
                "list",
                "default",
                "",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("watch=true"),
                "watch",
                "default",
                "",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("watch=false"),
                "list",
                "default",
                "",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("fieldSelector=metadata.name%3Dweb&watch=1"),
                "watch",
                "default",
                "",
                "pods",
                "",
                "web",
            ),
            (
                Method::GET,
                "/api/v1/pods",
                None,
                "list",
                "",
                "",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web",
                None,
                "get",
                "default",
                "",
                "pods",
                "",
                "web",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web/log",
                Some("follow=true"),
                "get",
                "default",
                "",
                "pods",
                "log",
                "web",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/web/exec",
                None,
                "create",
                "default",
                "",
                "pods",
                "exec",
                "web",
            ),
            (
                Method::POST,
                "/api/v1/namespaces/default/pods/web/portforward",
                None,
                "create",
                "default",
                "",
                "pods",
                "portforward",
                "web",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/pods/web",
                None,
                "delete",
                "default",
                "",
                "pods",
                "",
                "web",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/pods",
                None,
                "deletecollection",
                "default",
                "",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/events",
                None,
                "list",
                "default",
                "",
                "events",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default",
                None,
                "get",
                "default",
                "",
                "namespaces",
                "",
                "default",
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/status",
                None,
                "get",
                "default",
                "",
                "namespaces",
                "status",
                "default",
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                None,
                "list",
                "",
                "",
                "namespaces",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/nodes",
                None,
                "list",
                "",
                "",
                "nodes",
                "",
                "",
            ),
            (
                Method::GET,
                "/api/v1/nodes/n1",
                None,
                "get",
                "",
                "",
                "nodes",
                "",
                "n1",
            ),
            (
                Method::GET,
                "/api/v1/nodes/n1/proxy/stats/summary",
                None,
                "get",
                "",
                "",
                "nodes",
                "proxy",
                "n1",
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/default/pods",
                None,
                "watch",
                "default",
                "",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods",
                None,
                "list",
                "default",
                "metrics.k8s.io",
                "pods",
                "",
                "",
            ),
            (
                Method::GET,
                "/apis/metrics.k8s.io/v1beta1/nodes/n1",
                None,
                "get",
                "",
                "metrics.k8s.io",
                "nodes",
                "",
                "n1",
            ),
            (
                Method::POST,
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                None,
                "create",
                "",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
            ),
        ];
        for (method, path, query, verb, ns, group, resource, sub, name) in cases {
            let a = request_info(method, path, *query);
            assert!(a.resource_request, "{path}");
            assert_eq!(
                (
                    a.verb.as_str(),
                    a.namespace.as_str(),
                    a.api_group.as_str(),
                    a.resource.as_str(),
                    a.subresource.as_str(),
                    a.name.as_str()
                ),
                (*verb, *ns, *group, *resource, *sub, *name),
                "{method} {path}?{query:?}"
            );
        }
        for (method, path) in [
            (Method::GET, "/api"),
            (Method::GET, "/api/v1"),
            (Method::GET, "/apis"),
            (Method::GET, "/apis/metrics.k8s.io"),
            (Method::GET, "/apis/metrics.k8s.io/v1beta1"),
            (Method::GET, "/version"),
            (Method::GET, "/openapi/v2"),
            (Method::POST, "/api"),
        ] {
            let c = request_check(&method, path, None, "n1");
            assert_eq!(c.server, Server::ApiServer, "{path}");
            assert_eq!(c.attributes.len(), 1);
            let a = &c.attributes[0];
            assert!(!a.resource_request, "{path}");
            assert_eq!(a.verb, method.as_str().to_ascii_lowercase());
            assert_eq!(a.path, path);
        }
    }

    #[test]
    fn connect_upgrades_also_need_create() {
        let c = request_check(
            &Method::GET,
            "/api/v1/namespaces/default/pods/web/exec",
            Some("command=id&stdout=true"),
            "n1",
        );
        assert!(c.all);
        let verbs: Vec<&str> = c.attributes.iter().map(|a| a.verb.as_str()).collect();
        assert_eq!(verbs, ["get", "create"]);
        let c = request_check(
            &Method::GET,
            "/api/v1/namespaces/default/pods/web/log",
            None,
            "n1",
        );
        assert_eq!(c.attributes.len(), 1);
    }

    #[test]
    fn subpaths() {
        assert!(is_subpath("/stats", "/stats/"));
        assert!(is_subpath("/stats/summary", "/stats"));
        assert!(!is_subpath("/statsx", "/stats"));
        assert!(!is_subpath("/", "/stats"));
        assert!(is_api_server_path("/api/v1/pods"));
        assert!(is_api_server_path("/apis"));
        assert!(!is_api_server_path("/apix"));
        assert!(!is_api_server_path("/pods"));
    }
}
