//! A small Kinesis client: the JSON protocol over HTTP (`X-Amz-Target: Kinesis_20131202.<Op>`),
//! signed with AWS Signature Version 4. Only what the stream needs, plus the calls a test or a
//! producer uses; every call is one blocking request.

use std::fmt;
use std::time::Duration;

use ember::clock::{real_sleep, Clock, Stopwatch, SystemClock};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// AWS credentials. Their `Debug` form leaves out the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id.
    pub access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

impl Credentials {
    /// An access key and its secret.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// With a session token (temporary credentials).
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` from the environment.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID").ok().filter(|s| !s.is_empty())?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").ok().filter(|s| !s.is_empty())?;
        let c = Credentials::new(id, secret);
        Some(match std::env::var("AWS_SESSION_TOKEN").ok().filter(|s| !s.is_empty()) {
            Some(t) => c.session_token(t),
            None => c,
        })
    }
}

/// What a Kinesis call met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KinesisError {
    /// The service answered with an error (`kind` is its type, e.g. `ResourceNotFoundException`).
    Service {
        /// The HTTP status.
        status: u16,
        /// The error's type, without its namespace.
        kind: String,
        /// The service's message.
        message: String,
    },
    /// The endpoint could not be reached, or the connection broke.
    Transport(String),
    /// The answer was not what the protocol says.
    Protocol(String),
}

impl KinesisError {
    /// Whether a later attempt may succeed: throttling, the service's own failures, a lost
    /// connection.
    pub fn is_retryable(&self) -> bool {
        match self {
            KinesisError::Service { status, kind, .. } => {
                *status >= 500
                    || matches!(
                        kind.as_str(),
                        "ProvisionedThroughputExceededException"
                            | "LimitExceededException"
                            | "ThrottlingException"
                            | "KMSThrottlingException"
                            | "InternalFailure"
                            | "ServiceUnavailable"
                    )
            }
            KinesisError::Transport(_) => true,
            KinesisError::Protocol(_) => false,
        }
    }

    /// The error's type when the service gave one.
    pub fn kind(&self) -> Option<&str> {
        match self {
            KinesisError::Service { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

impl fmt::Display for KinesisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KinesisError::Service { status, kind, message } => write!(f, "{kind} (HTTP {status}): {message}"),
            KinesisError::Transport(m) => write!(f, "cannot reach the endpoint: {m}"),
            KinesisError::Protocol(m) => write!(f, "unexpected answer: {m}"),
        }
    }
}

impl std::error::Error for KinesisError {}

/// A Kinesis endpoint with credentials.
#[derive(Clone)]
pub struct KinesisClient {
    url: String,
    host: String,
    region: String,
    credentials: Credentials,
    agent: ureq::Agent,
}

impl fmt::Debug for KinesisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisClient").field("url", &self.url).field("region", &self.region).finish_non_exhaustive()
    }
}

/// The largest answer read (GetRecords returns at most 10 MiB of data, base64 in JSON).
const MAX_ANSWER: u64 = 64 << 20;

impl KinesisClient {
    /// A client for `region`'s public endpoint, or for `endpoint` (`http://127.0.0.1:4567`) when
    /// given.
    pub fn new(endpoint: Option<&str>, region: &str, credentials: Credentials) -> Result<Self, String> {
        let url = match endpoint {
            Some(e) => e.trim_end_matches('/').to_owned(),
            None => format!("https://kinesis.{region}.amazonaws.com"),
        };
        let host = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| format!("the Kinesis endpoint `{url}` is not http:// or https://"))?
            .to_owned();
        if host.is_empty() || host.contains('/') {
            return Err(format!("the Kinesis endpoint `{url}` must be scheme://host[:port] with no path"));
        }
        if region.is_empty() {
            return Err("the Kinesis region is empty".to_owned());
        }
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Ok(KinesisClient { url, host, region: region.to_owned(), credentials, agent: config.into() })
    }

    /// The endpoint's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls operation `op` (e.g. `ListShards`) with a JSON body; returns the JSON answer.
    pub fn call(&self, op: &str, body: &Value) -> Result<Value, KinesisError> {
        let payload = body.to_string();
        let target = format!("Kinesis_20131202.{op}");
        let now = SystemClock.now_millis();
        let headers = self.signed_headers(&target, payload.as_bytes(), now);
        let mut req = self.agent.post(&self.url);
        for (k, v) in &headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.send(payload.as_bytes()).map_err(|e| KinesisError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| KinesisError::Transport(format!("reading the answer to {op}: {e}")))?;
        if (200..300).contains(&status) {
            if text.trim().is_empty() {
                return Ok(Value::Object(Default::default()));
            }
            return serde_json::from_str(&text)
                .map_err(|e| KinesisError::Protocol(format!("{op} answered with something other than JSON: {e}")));
        }
        Err(service_error(status, &text))
    }

    /// Calls `op`, retrying throttling, the service's own failures and lost connections with
    /// back-off (100 ms doubling to 2 s) until `timeout` has passed.
    pub fn call_retrying(&self, op: &str, body: &Value, timeout: Duration) -> Result<Value, KinesisError> {
        let watch = Stopwatch::start();
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.call(op, body) {
                Err(e) if e.is_retryable() && watch.elapsed() + backoff < timeout => {
                    if attempts <= 3 || attempts.is_multiple_of(20) {
                        tracing::warn!("kinesis: {op} at {} failed ({e}); retrying in {backoff:?}", self.url);
                    }
                    real_sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// The headers of a signed request (Signature Version 4, service `kinesis`) at `now_ms`.
    fn signed_headers(&self, target: &str, payload: &[u8], now_ms: u64) -> Vec<(String, String)> {
        let amz_date = amz_date(now_ms);
        let date = &amz_date[..8];
        let mut headers = vec![
            ("content-type".to_owned(), "application/x-amz-json-1.1".to_owned()),
            ("host".to_owned(), self.host.clone()),
            ("x-amz-date".to_owned(), amz_date.clone()),
            ("x-amz-target".to_owned(), target.to_owned()),
        ];
        if let Some(token) = &self.credentials.session_token {
            headers.push(("x-amz-security-token".to_owned(), token.clone()));
        }
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{}\n", v.trim())).collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical = format!("POST\n/\n\n{canonical_headers}\n{signed}\n{}", hex(&Sha256::digest(payload)));
        let scope = format!("{date}/{}/kinesis/aws4_request", self.region);
        let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
        let key = signing_key(&self.credentials.secret_access_key, date, &self.region, "kinesis");
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        headers.push((
            "authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                self.credentials.access_key_id
            ),
        ));
        // The agent sets `host` itself, from the same URL.
        headers.retain(|(k, _)| k != "host");
        headers
    }

    /// Puts records `(partition key, data)` with `PutRecords`, 500 per call; returns each one's
    /// shard and sequence number, in order. A record the service refused in a call that
    /// succeeded is an error naming it (its `ErrorCode`).
    pub fn put_records(
        &self,
        stream: &str,
        records: &[(String, Vec<u8>)],
    ) -> Result<Vec<(String, String)>, KinesisError> {
        use base64::Engine;
        let mut out = Vec::with_capacity(records.len());
        for chunk in records.chunks(500) {
            let entries: Vec<Value> = chunk
                .iter()
                .map(|(k, d)| {
                    serde_json::json!({ "PartitionKey": k, "Data": base64::engine::general_purpose::STANDARD.encode(d) })
                })
                .collect();
            let body = serde_json::json!({ "StreamName": stream, "Records": entries });
            let v = self.call_retrying("PutRecords", &body, Duration::from_secs(60))?;
            for r in v.get("Records").and_then(Value::as_array).into_iter().flatten() {
                let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
                match (text("ShardId"), text("SequenceNumber")) {
                    (Some(shard), Some(seq)) => out.push((shard, seq)),
                    _ => {
                        return Err(KinesisError::Protocol(format!(
                            "PutRecords refused record {}: {}",
                            out.len(),
                            text("ErrorCode").unwrap_or_else(|| "no shard and sequence number".to_owned())
                        )))
                    }
                }
            }
        }
        Ok(out)
    }

    /// Creates stream `stream` with `shards` shards and waits (up to 60 s) until it is ACTIVE.
    pub fn create_stream(&self, stream: &str, shards: u32) -> Result<(), KinesisError> {
        self.call("CreateStream", &serde_json::json!({ "StreamName": stream, "ShardCount": shards }))?;
        self.wait_active(stream)
    }

    /// Waits (up to 60 s) until stream `stream` is ACTIVE (after a create or a reshard).
    pub fn wait_active(&self, stream: &str) -> Result<(), KinesisError> {
        let watch = Stopwatch::start();
        loop {
            let v = self.call("DescribeStreamSummary", &serde_json::json!({ "StreamName": stream }))?;
            let status = v.pointer("/StreamDescriptionSummary/StreamStatus").and_then(Value::as_str);
            if status == Some("ACTIVE") {
                return Ok(());
            }
            if watch.elapsed() > Duration::from_secs(60) {
                return Err(KinesisError::Protocol(format!("stream {stream} is still {status:?} after 60 s")));
            }
            real_sleep(Duration::from_millis(20));
        }
    }
}

/// The error in an answer's body: JSON (`__type`, `message`), or the XML some front ends send
/// (`<Code>`, `<Message>`), or else the text itself.
fn service_error(status: u16, text: &str) -> KinesisError {
    let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let xml = |tag: &str| {
        let start = text.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = text[start..].find(&format!("</{tag}>"))? + start;
        Some(text[start..end].to_owned())
    };
    let kind = json
        .get("__type")
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        .or_else(|| xml("Code"))
        .unwrap_or_else(|| format!("HTTP{status}"));
    let message = json
        .get("message")
        .or_else(|| json.get("Message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| xml("Message"))
        .unwrap_or_else(|| text.chars().take(200).collect());
    KinesisError::Service { status, kind, message }
}

/// `YYYYMMDDTHHMMSSZ` of a time in milliseconds since the epoch (UTC).
fn amz_date(ms: u64) -> String {
    let u = ember::Time::from_millis(ms).utc();
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", u.year, u.month, u.day, u.hour, u.minute, u.second)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        // 2012-02-15 00:00:00 UTC and a leap day.
        assert_eq!(amz_date(1_329_264_000_000), "20120215T000000Z");
        assert_eq!(amz_date(1_709_210_096_789), "20240229T123456Z");
    }

    #[test]
    fn the_signing_key_matches_the_documented_example() {
        // The derivation example in AWS's Signature Version 4 documentation.
        let key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam");
        assert_eq!(hex(&key), "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
    }

    #[test]
    fn requests_carry_a_well_formed_authorization() {
        let c =
            KinesisClient::new(Some("http://127.0.0.1:4567"), "eu-west-1", Credentials::new("AKID", "secret")).unwrap();
        let h = c.signed_headers("Kinesis_20131202.ListShards", b"{}", 1_329_264_000_000);
        let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20120215/eu-west-1/kinesis/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="),
            "{auth}"
        );
        assert_eq!(auth.rsplit('=').next().unwrap().len(), 64);
        assert!(
            !format!("{c:?}").contains("secret") && !format!("{:?}", Credentials::new("a", "hush")).contains("hush")
        );
    }

    #[test]
    fn https_endpoints_go_through_tls() {
        // A server that answers a TLS hello with plain text: the handshake fails as an error.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let c =
            KinesisClient::new(Some(&format!("https://127.0.0.1:{port}")), "r", Credentials::new("a", "b")).unwrap();
        let e = c.call("ListShards", &serde_json::json!({})).unwrap_err();
        assert!(matches!(e, KinesisError::Transport(_)), "{e:?}");
    }

    #[test]
    fn endpoints_are_checked() {
        let creds = || Credentials::new("a", "b");
        assert!(KinesisClient::new(Some("127.0.0.1:4567"), "r", creds()).unwrap_err().contains("not http"));
        assert!(KinesisClient::new(Some("http://h:1/x"), "r", creds()).unwrap_err().contains("no path"));
        assert_eq!(
            KinesisClient::new(None, "us-west-2", creds()).unwrap().url(),
            "https://kinesis.us-west-2.amazonaws.com"
        );
    }

    #[test]
    fn service_errors_are_read_from_json_and_xml() {
        let e = service_error(
            400,
            r#"{"__type":"com.amazon.coral#ResourceNotFoundException","message":"Stream s not found"}"#,
        );
        assert_eq!(e.to_string(), "ResourceNotFoundException (HTTP 400): Stream s not found");
        let e = service_error(403, "<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The token is invalid.</Message></Error></ErrorResponse>");
        assert_eq!(e.to_string(), "InvalidClientTokenId (HTTP 403): The token is invalid.");
        assert_eq!(service_error(502, "bad gateway").to_string(), "HTTP502 (HTTP 502): bad gateway");
    }

    #[test]
    fn throttling_and_server_failures_are_retryable_and_the_rest_is_not() {
        let e = |status, kind: &str| KinesisError::Service { status, kind: kind.into(), message: String::new() };
        assert!(e(400, "ProvisionedThroughputExceededException").is_retryable());
        assert!(e(503, "Whatever").is_retryable());
        assert!(!e(400, "ResourceNotFoundException").is_retryable());
        assert!(!e(400, "UnrecognizedClientException").is_retryable());
        assert!(KinesisError::Transport("refused".into()).is_retryable());
    }
}
