//! Settings of the server's edge: built-in TLS, the HTTP → HTTPS redirect
//! listener, which reverse proxies are believed, and the metrics listener.
//! A group of [`ServerConfig`](crate::state::ServerConfig) whose fields are
//! top-level settings (no prefix, see [`settings::KEY_GROUPS`]).

use crate::settings;
use ipnet::IpNet;
use serde::Deserializer;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct EdgeSettings {
    /// PEM certificate chain; with `tls_key`, the main listener speaks HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// How often the pair's files are compared with the one in service.
    #[serde(deserialize_with = "settings::at_least::<1, _, _>")]
    pub tls_reload_interval_secs: u64,
    /// A plain-HTTP listener that answers every request 308 to the same URL on https.
    #[serde(deserialize_with = "settings::optional_host_port")]
    pub http_redirect_listen: Option<SocketAddr>,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are believed.
    #[serde(deserialize_with = "cidrs")]
    pub trusted_proxies: Vec<IpNet>,
    /// When set, `/metrics` is served here only, not on the main listener.
    #[serde(deserialize_with = "settings::optional_host_port")]
    pub metrics_listen: Option<SocketAddr>,
    /// Per-app series (update checks, stats events) with an `app` label.
    pub metrics_per_app: bool,
    /// Apps that get their own `app` label; later ones count as `other`.
    #[serde(deserialize_with = "settings::at_least::<1, _, _>")]
    pub metrics_max_apps: usize,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        EdgeSettings {
            tls_cert: None,
            tls_key: None,
            tls_reload_interval_secs: 5,
            http_redirect_listen: None,
            trusted_proxies: crate::proxy::default_trusted(),
            metrics_listen: None,
            metrics_per_app: false,
            metrics_max_apps: 100,
        }
    }
}

impl EdgeSettings {
    /// The certificate pair, when both are set; one without the other is an error.
    pub fn tls_files(&self) -> Result<Option<crate::tls::TlsFiles>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(crate::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            (None, None) => Ok(None),
            (Some(_), None) => Err("tls_cert is set but tls_key is not".into()),
            (None, Some(_)) => Err("tls_key is set but tls_cert is not".into()),
        }
    }
}

/// A list of CIDR blocks or addresses (a comma-separated string is one
/// list; `none` alone is the empty list, which an environment variable
/// cannot otherwise say: an empty one is unset).
fn cidrs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<IpNet>, D::Error> {
    use serde::de::Error as _;
    let items = settings::list(deserializer)?;
    if let [only] = &items[..] {
        if only.eq_ignore_ascii_case("none") {
            return Ok(Vec::new());
        }
    }
    items
        .iter()
        .map(|item| crate::proxy::parse_cidr(item).map_err(D::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_parse_from_a_list_or_a_string() {
        let edge: EdgeSettings =
            serde_json::from_str(r#"{"trusted_proxies": "10.0.0.0/8, 192.0.2.1"}"#).unwrap();
        assert_eq!(edge.trusted_proxies.len(), 2);
        let edge: EdgeSettings = serde_json::from_str(r#"{"trusted_proxies": []}"#).unwrap();
        assert!(edge.trusted_proxies.is_empty());
        let edge: EdgeSettings = serde_json::from_str(r#"{"trusted_proxies": "none"}"#).unwrap();
        assert!(edge.trusted_proxies.is_empty());
        assert!(serde_json::from_str::<EdgeSettings>(r#"{"trusted_proxies": ["nope"]}"#).is_err());
        assert_eq!(EdgeSettings::default().trusted_proxies.len(), 2);
        let half = EdgeSettings {
            tls_cert: Some("c.pem".into()),
            ..EdgeSettings::default()
        };
        assert!(half.tls_files().is_err());
    }
}
