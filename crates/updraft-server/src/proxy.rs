//! Who sent a request, and how the client reached this server: the
//! connection's peer and whether it is TLS, or, when the peer is one of the
//! `trusted_proxies`, what the proxy says in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For/-Proto/-Host`.
//!
//! [`resolve_client`] runs first on every request: it removes the forwarding
//! headers the client sent, works out the [`Client`] (inserted as an
//! extension), and writes the result back as the only `X-Forwarded-Proto` /
//! `X-Forwarded-Host` the rest of the server sees. Download URLs
//! ([`crate::state::AppState::base_url`]) and client addresses (logs, the
//! failed-authentication throttle) both come from it.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The connection a request came on, set by the listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    pub peer: SocketAddr,
    pub tls: bool,
}

/// The client as far as this server believes: its address, and the scheme
/// and host it used (`None` = the request's own `Host`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub ip: Option<IpAddr>,
    pub https: bool,
    pub host: Option<String>,
}

/// Peers whose forwarding headers are believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket
/// reports) as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses `10.0.0.0/8`, `::1/128` or a bare address (one host).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or CIDR block (e.g. 10.0.0.0/8)"))
}

/// The default: a proxy on the same host (loopback) is believed, nothing else.
pub fn default_trusted() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|net| net.parse().ok())
        .collect()
}

/// What one forwarding hop said.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Hop {
    /// The address this hop received the request from (`for=`).
    from: Option<IpAddr>,
    proto: Option<String>,
    host: Option<String>,
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A node of `for=` / `X-Forwarded-For`: `1.2.3.4`, `1.2.3.4:5`,
/// `"[2001:db8::1]:5"`, `2001:db8::1`; obfuscated ones and `unknown` are `None`.
fn node_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim().trim_matches('"');
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip);
    }
    text.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

fn clean_proto(text: &str) -> Option<String> {
    let proto = text.trim().trim_matches('"').to_ascii_lowercase();
    matches!(proto.as_str(), "http" | "https").then_some(proto)
}

/// A host (and port) as it may appear in a URL: no spaces, slashes or
/// userinfo, so a proxy's header cannot inject a path into download links.
pub(crate) fn clean_host(text: &str) -> Option<String> {
    let host = text.trim().trim_matches('"');
    let ok = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    ok.then(|| host.to_ascii_lowercase())
}

/// The hops, nearest client first, from `Forwarded` when present, else
/// from the `X-Forwarded-*` headers (proto and host come from the proxy that
/// forwarded to this server, so they go with the last hop).
fn hops(headers: &HeaderMap) -> Vec<Hop> {
    if headers.contains_key("forwarded") {
        return header_values(headers, "forwarded")
            .map(|element| {
                let mut hop = Hop::default();
                for pair in element.split(';') {
                    let Some((name, value)) = pair.split_once('=') else {
                        continue;
                    };
                    match name.trim().to_ascii_lowercase().as_str() {
                        "for" => hop.from = node_ip(value),
                        "proto" => hop.proto = clean_proto(value),
                        "host" => hop.host = clean_host(value),
                        _ => {}
                    }
                }
                hop
            })
            .collect();
    }
    let mut hops: Vec<Hop> = header_values(headers, "x-forwarded-for")
        .map(|node| Hop {
            from: node_ip(node),
            ..Hop::default()
        })
        .collect();
    let proto = header_values(headers, "x-forwarded-proto")
        .next()
        .and_then(clean_proto);
    let host = header_values(headers, "x-forwarded-host")
        .next()
        .and_then(clean_host);
    if proto.is_some() || host.is_some() {
        // Set (or overwritten) by the proxy that forwarded to this server.
        if hops.is_empty() {
            hops.push(Hop::default());
        }
        if let Some(last) = hops.last_mut() {
            last.proto = proto;
            last.host = host;
        }
    }
    hops
}

/// The client of a request: from the connection, or, when the peer is
/// trusted, from the forwarding headers. The address is the nearest one
/// (walking from the peer towards the client) that is not a trusted proxy;
/// scheme and host are the ones the outermost trusted hop reports.
pub fn resolve(
    connection: Option<Connection>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Client {
    let Some(connection) = connection else {
        // In-process use without a listener: no peer, nothing believed.
        return Client {
            ip: None,
            https: false,
            host: None,
        };
    };
    let peer = canonical(connection.peer.ip());
    let mut client = Client {
        ip: Some(peer),
        https: connection.tls,
        host: None,
    };
    if !trusted.contains(peer) {
        return client;
    }
    let hops = hops(headers);
    // Walk back from the peer: each hop's `for` is believed while the hop
    // that wrote it was trusted; `hops[believed..]` are the hops written by
    // trusted proxies.
    let mut believed = hops.len();
    for (index, hop) in hops.iter().enumerate().rev() {
        believed = index;
        let Some(from) = hop.from.map(canonical) else {
            break;
        };
        client.ip = Some(from);
        if !trusted.contains(from) {
            break;
        }
    }
    // Scheme and host: from the outermost trusted hop that says anything
    // (the proxy the client talked to).
    let described = hops
        .get(believed..)
        .unwrap_or_default()
        .iter()
        .find(|hop| hop.proto.is_some() || hop.host.is_some());
    if let Some(hop) = described {
        if let Some(proto) = &hop.proto {
            client.https = proto == "https";
        }
        client.host = hop.host.clone();
    }
    client
}

const FORWARDING_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// Middleware: resolves the [`Client`], removes the forwarding headers the
/// request came with, and sets `X-Forwarded-Proto` (always) and
/// `X-Forwarded-Host` (when a trusted proxy named one) to what was resolved.
pub async fn resolve_client(
    axum::extract::State(trusted): axum::extract::State<Arc<TrustedProxies>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let connection = request.extensions().get::<Connection>().copied();
    let client = resolve(connection, request.headers(), &trusted);
    // HTTP/2 carries the host in the `:authority` pseudo-header, which
    // hyper puts in the URI: give it to the handlers as `Host`.
    let authority = request
        .uri()
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok());
    let headers = request.headers_mut();
    if let Some(authority) = authority {
        headers.entry(axum::http::header::HOST).or_insert(authority);
    }
    for name in FORWARDING_HEADERS {
        headers.remove(name);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if client.https { "https" } else { "http" }),
    );
    if let Some(value) = client
        .host
        .as_deref()
        .and_then(|host| HeaderValue::from_str(host).ok())
    {
        headers.insert(HeaderName::from_static("x-forwarded-host"), value);
    }
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// The client address of a request that went through [`resolve_client`].
pub fn client_ip(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions.get::<Client>().and_then(|client| client.ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn conn(peer: &str, tls: bool) -> Option<Connection> {
        Some(Connection {
            peer: peer.parse().unwrap(),
            tls,
        })
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| parse_cidr(n).unwrap()).collect())
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
        ]);
        let client = resolve(
            conn("203.0.113.9:5000", false),
            &h,
            &trusted(&["10.0.0.0/8"]),
        );
        assert_eq!(
            client,
            Client {
                ip: Some("203.0.113.9".parse().unwrap()),
                https: false,
                host: None
            }
        );
        let tls = resolve(
            conn("203.0.113.9:5000", true),
            &h,
            &TrustedProxies::default(),
        );
        assert!(tls.https);
    }

    #[test]
    fn a_trusted_proxy_names_the_client_scheme_and_host() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.3"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "Updates.Example.com"),
        ]);
        // The client spoofed 6.6.6.6; the first untrusted hop from the right wins.
        let client = resolve(conn("10.0.0.2:1", false), &h, &t);
        assert_eq!(client.ip, Some("198.51.100.7".parse().unwrap()));
        assert!(client.https);
        assert_eq!(client.host.as_deref(), Some("updates.example.com"));
        let h = headers(&[(
            "forwarded",
            "for=198.51.100.7;proto=https;host=u.example, for=\"[2001:db8::1]:443\"",
        )]);
        let client = resolve(conn("[::ffff:10.1.1.1]:1", false), &h, &t);
        assert_eq!(client.ip, Some("2001:db8::1".parse().unwrap()));
        let t = trusted(&["10.0.0.0/8", "2001:db8::/32"]);
        let client = resolve(conn("10.1.1.1:1", false), &h, &t);
        assert_eq!(client.ip, Some("198.51.100.7".parse().unwrap()));
        assert_eq!(
            (client.https, client.host.as_deref()),
            (true, Some("u.example"))
        );
    }

    #[test]
    fn garbage_in_forwarding_headers_is_dropped() {
        let t = trusted(&["127.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-for", "not-an-ip"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "a.example/evil?x="),
        ]);
        let client = resolve(conn("127.0.0.1:1", true), &h, &t);
        assert_eq!(client.ip, Some("127.0.0.1".parse().unwrap()));
        assert!(client.https);
        assert_eq!(client.host, None);
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert_eq!(parse_cidr("::1").unwrap().to_string(), "::1/128");
        assert_eq!(resolve(None, &h, &t).ip, None);
    }
}
