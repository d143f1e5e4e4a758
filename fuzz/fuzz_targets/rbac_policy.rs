//! RBAC policy files (`--authorization-policy-path`): Roles, ClusterRoles and their bindings,
//! YAML or JSON, several documents and `List`s. Decoding and the API server's checks never
//! panic, whatever the bytes; a policy that loads answers an authorization question.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minikubelet::server::authz::policy;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = policy::parse(std::path::Path::new("policy.yaml"), text);
});
