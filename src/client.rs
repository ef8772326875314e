//! The CLI's client for a running server's admin API.
//!
//! A running server leaves `admin.json` in its data dir: a loopback URL, a
//! bearer credential and the path of the certificate it presents. The
//! client trusts exactly that certificate (byte for byte), so it works with
//! the self-signed certificate and with an operator's own one whose names
//! do not include the loopback address.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::datadir::DataDir;
use crate::server::AdminEndpoint;

/// A connection recipe for one running server's admin API.
pub struct AdminClient {
    endpoint: AdminEndpoint,
    tls: Arc<rustls::ClientConfig>,
}

impl AdminClient {
    /// Reads the endpoint a running server left in `dir`.
    pub fn from_dir(dir: &DataDir) -> Result<Self, String> {
        let path = dir.admin_credential();
        let text = std::fs::read(&path).map_err(|e| {
            format!(
                "{} is in use by a running authd, but its admin credential {} cannot be read ({e})",
                dir.db().display(),
                path.display()
            )
        })?;
        let endpoint: AdminEndpoint =
            serde_json::from_slice(&text).map_err(|e| format!("{} is malformed: {e}", path.display()))?;
        let pinned = crate::tls::read_certs(std::path::Path::new(&endpoint.cert))?
            .into_iter()
            .next()
            .ok_or_else(|| format!("{} holds no certificate", endpoint.cert))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Pinned { cert: pinned, provider: Arc::clone(&provider) });
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(AdminClient { endpoint, tls: Arc::new(tls) })
    }

    /// The certificate the server presents (its path).
    pub fn cert_path(&self) -> &std::path::Path {
        std::path::Path::new(&self.endpoint.cert)
    }

    /// The server running on `dir`: its credential file is there and
    /// something listens at its address (see [`reachable`](Self::reachable)).
    pub async fn running(dir: &DataDir) -> Option<AdminClient> {
        let client = AdminClient::from_dir(dir).ok()?;
        client.reachable().await.then_some(client)
    }

    /// Whether something listens at the server's address (a TCP connect,
    /// no request: a stale credential file from a killed server says no).
    pub async fn reachable(&self) -> bool {
        let authority = self.endpoint.url.trim_start_matches("https://");
        let connect = tokio::net::TcpStream::connect(authority);
        matches!(tokio::time::timeout(std::time::Duration::from_secs(2), connect).await, Ok(Ok(_)))
    }

    /// Whether the server this credential names answers it: its pinned
    /// certificate and the credential both pass (a killed server's file,
    /// with something else on its port now, says no).
    pub async fn answers(&self) -> bool {
        self.send(Method::GET, "/rest/authd/1/admin/users", None)
            .await
            .is_ok_and(|(status, _)| status.is_success())
    }

    /// Sends one request; returns the status and the body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), String> {
        let authority = self.endpoint.url.trim_start_matches("https://").to_string();
        let unreachable = |e: &dyn std::fmt::Display| {
            format!("cannot reach the running authd at {} ({e}); is it still running?", self.endpoint.url)
        };
        let tcp = tokio::net::TcpStream::connect(&authority).await.map_err(|e| unreachable(&e))?;
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.map_err(|e| unreachable(&e))?;
        tokio::spawn(conn);
        let payload = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).map_err(|e| e.to_string())?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority.as_str())
            .header("authorization", format!("Bearer {}", self.endpoint.credential));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(payload)).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| unreachable(&e))?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|e| unreachable(&e))?.to_bytes();
        Ok((status, bytes))
    }

    /// Sends a request and decodes a successful JSON answer, or returns the
    /// server's Jira-shaped error message.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, String> {
        let (status, bytes) = self.send(method, path, body).await?;
        if !status.is_success() {
            return Err(error_message(status, &bytes));
        }
        let bytes = if bytes.is_empty() { Bytes::from_static(b"null") } else { bytes };
        serde_json::from_slice(&bytes).map_err(|e| format!("unexpected answer from the server: {e}"))
    }
}

/// The first `errorMessages` entry of a Jira-shaped error body.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errorMessages")?.get(0)?.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("the server answered {status}"))
}

/// Trusts one exact certificate, whatever names it carries.
#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("the server's certificate is not the one in the data dir".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_jira_bodies() {
        let body = br#"{"errorMessages":["no user named 'x'"],"errors":{}}"#;
        assert_eq!(error_message(StatusCode::NOT_FOUND, body), "no user named 'x'");
        assert_eq!(error_message(StatusCode::BAD_GATEWAY, b"junk"), "the server answered 502 Bad Gateway");
    }
}
