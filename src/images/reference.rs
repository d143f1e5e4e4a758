//! Image references normalized the way containerd and Docker do (`reference.ParseNormalizedNamed`
//! in `github.com/distribution/reference`): `nginx` → `docker.io/library/nginx:latest`.
//! A reference that does not parse is the kubelet's `InvalidImageName`.

use std::fmt;

/// The registry a reference without a domain belongs to.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's legacy name, folded into [`DEFAULT_DOMAIN`].
const LEGACY_DOMAIN: &str = "index.docker.io";
/// The tag a reference without tag or digest gets.
pub const DEFAULT_TAG: &str = "latest";
/// distribution/reference's `NameTotalLengthMax`.
const NAME_MAX: usize = 255;

/// Why a reference is not a valid image name (the kubelet's `InvalidImageName`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image name {image:?}: {reason}")]
pub struct InvalidImageName {
    pub image: String,
    pub reason: &'static str,
}

/// A normalized image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `docker.io`, `registry.example:5000`, `localhost:5000`.
    pub domain: String,
    /// `library/nginx`.
    pub path: String,
    /// The tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parse and normalize `image`.
    pub fn parse(image: &str) -> Result<Self, InvalidImageName> {
        let bad = |reason| InvalidImageName {
            image: image.to_string(),
            reason,
        };
        if image.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or(bad("digest must be sha256:<64 hex digits>"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(bad("digest must be sha256:<64 hex digits>"));
                }
                (r, Some(d.to_string()))
            }
            None => (image, None),
        };
        let slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(c) if slash.is_none_or(|s| c > s) => (&rest[..c], Some(&rest[c + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(bad("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains('.') || d.contains(':') || d == "localhost" => {
                (d.to_string(), p.to_string())
            }
            Some(_) => (DEFAULT_DOMAIN.to_string(), name.to_string()),
            None => (DEFAULT_DOMAIN.to_string(), format!("library/{name}")),
        };
        let domain = if domain == LEGACY_DOMAIN {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if !valid_domain(&domain) {
            return Err(bad(
                "registry must be a host name or address with an optional :port",
            ));
        }
        if path.is_empty() || !path.split('/').all(valid_component) {
            return Err(bad(
                "repository must be lowercase path components of [a-z0-9] joined by . _ __ -",
            ));
        }
        if domain.len() + 1 + path.len() > NAME_MAX {
            return Err(bad("repository name longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(ImageRef {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// `docker.io/library/nginx` (no tag, no digest): the repository.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// True when the tag is `latest` (or absent with no digest): the pull policy's `Always` case.
    pub fn is_latest(&self) -> bool {
        self.digest.is_none() && self.tag.as_deref().is_none_or(|t| t == DEFAULT_TAG)
    }

    /// The host part without the port: for the loopback rule.
    pub fn host(&self) -> &str {
        match self.domain.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => self
                .domain
                .rsplit_once(':')
                .map_or(&self.domain, |(h, _)| h),
        }
    }

    /// The same reference for the Distribution client.
    pub fn to_oci(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(t), Some(d)) => oci_client::Reference::with_tag_and_digest(
                self.domain.clone(),
                self.path.clone(),
                t.clone(),
                d.clone(),
            ),
            (_, Some(d)) => oci_client::Reference::with_digest(
                self.domain.clone(),
                self.path.clone(),
                d.clone(),
            ),
            (t, None) => oci_client::Reference::with_tag(
                self.domain.clone(),
                self.path.clone(),
                t.clone().unwrap_or_else(|| DEFAULT_TAG.to_string()),
            ),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ImageRef {
    type Err = InvalidImageName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    if b.iter().any(|c| c.is_ascii_uppercase()) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&s| s == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(d: &str) -> bool {
    if let Some(v6) = d.strip_prefix('[') {
        let Some((addr, port)) = v6.split_once(']') else {
            return false;
        };
        return addr.parse::<std::net::Ipv6Addr>().is_ok()
            && (port.is_empty() || port.strip_prefix(':').is_some_and(valid_port));
    }
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if port.is_some_and(|p| !valid_port(p)) {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.27"), "docker.io/library/nginx:1.27");
        assert_eq!(norm("bitnami/redis"), "docker.io/bitnami/redis:latest");
        assert_eq!(
            norm("index.docker.io/library/nginx"),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(norm("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(norm("localhost/x:1"), "localhost/x:1");
        assert_eq!(norm("quay.io/a/b/c:v1"), "quay.io/a/b/c:v1");
        assert_eq!(norm("127.0.0.1:5000/mkl/bb:1"), "127.0.0.1:5000/mkl/bb:1");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            norm(&format!("nginx@{d}")),
            format!("docker.io/library/nginx@{d}")
        );
        assert_eq!(
            norm(&format!("nginx:1@{d}")),
            format!("docker.io/library/nginx:1@{d}")
        );
        assert_eq!(norm("[::1]:5000/x"), "[::1]:5000/x:latest");
    }

    #[test]
    fn latest_and_host() {
        assert!(ImageRef::parse("nginx").unwrap().is_latest());
        assert!(ImageRef::parse("nginx:latest").unwrap().is_latest());
        assert!(!ImageRef::parse("nginx:1").unwrap().is_latest());
        assert_eq!(
            ImageRef::parse("localhost:5000/x").unwrap().host(),
            "localhost"
        );
        assert_eq!(ImageRef::parse("[::1]:5000/x").unwrap().host(), "::1");
        assert_eq!(ImageRef::parse("nginx").unwrap().host(), "docker.io");
    }

    #[test]
    fn refuses_invalid() {
        for bad in [
            "",
            "Nginx",
            "docker.io/Library/nginx",
            "nginx:",
            "nginx:-x",
            "nginx@sha256:abc",
            "nginx@md5:0000",
            "a//b",
            "a/b/",
            "-a",
            "a--",
            "a..b",
            "reg:abc/x",
            "a b",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    proptest! {
        #[test]
        fn normal_form_is_a_fixed_point(s in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}(:[a-z0-9]{1,5})?") {
            let once = norm(&s);
            prop_assert_eq!(norm(&once), once.clone());
            prop_assert!(once.contains('/'));
        }

        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = ImageRef::parse(&s);
        }
    }
}
