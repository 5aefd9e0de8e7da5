//! Object stores for Ember: checkpoints, the write-ahead log, file streams and file outputs on
//! S3 (and, with the `gcp` and `azure` features, Google Cloud Storage and Azure Blob Storage),
//! through the `object_store` crate.
//!
//! Call [`register`] once, before the context is created; from then on every URL Ember takes
//! may name an object store:
//!
//! ```no_run
//! # fn main() -> ember::Result<()> {
//! use ember::prelude::*;
//! ember_store::register();
//! let conf = Conf::new().set("fs.s3.endpoint", "http://127.0.0.1:5000");
//! let ssc = StreamingContext::new(conf, std::time::Duration::from_secs(1))?;
//! ssc.checkpoint("s3://my-bucket/jobs/word-count/checkpoint");
//! let lines = ssc.text_file_stream("s3://my-bucket/incoming");
//! lines.save_as_text_files("s3://my-bucket/out/lines", "txt");
//! # Ok(()) }
//! ```
//!
//! Schemes: `s3://bucket/prefix` (also `s3a://`, as Spark writes it), and with the features
//! `gcp`, `azure` and `hdfs`: `gs://bucket/prefix`, `az://container/prefix`,
//! `hdfs://namenode:port/path` (hdfs-native, no JVM). `scripts/test.sh` compiles these three but
//! runs none: no server for them can run where Ember is tested.
//!
//! **Configuration.** Credentials, region and endpoint come from the usual AWS environment
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, ...), overridden by the context's configuration keys `fs.s3.endpoint`,
//! `fs.s3.region`, `fs.s3.path_style`, `fs.s3.access_key_id` and `fs.s3.secret_access_key`;
//! `fs.request_timeout` and `fs.retry_timeout` bound every request. Credentials are never logged,
//! and `Conf`'s `Debug` hides them.
//!
//! **Opening checks the store.** A storage is opened when the context is created or started
//! (the checkpoint directory, outputs) or a stream is declared (file streams): opening lists the
//! root once, so an unreachable endpoint, a missing bucket or refused credentials are an error
//! then, naming the URL and the store's answer, not a hang or a failure hours later.
//!
//! **What each operation costs and promises on an object store.** `put` is one PUT (objects up
//! to 5 GB); the checkpoint's commit records use a conditional PUT (`If-None-Match: *`), so two
//! incarnations of a job can never both commit the same checkpoint; a listing is one LIST per
//! 1000 names; a file is read in ranged GETs of 1 MB; a batch's output directory is committed
//! by a server-side copy of each part, and is complete once its `_SUCCESS` object exists.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ember::storage::{Entry, Storage};
use ember::{Conf, Error, Result};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// Registers the object stores with Ember's storage layer (idempotent).
pub fn register() {
    for scheme in ["s3", "s3a"] {
        ember::storage::register(scheme, Arc::new(open));
    }
    #[cfg(feature = "gcp")]
    ember::storage::register("gs", Arc::new(open));
    #[cfg(feature = "azure")]
    for scheme in ["az", "abfs", "abfss"] {
        ember::storage::register(scheme, Arc::new(open));
    }
    #[cfg(feature = "hdfs")]
    for scheme in ["hdfs", "viewfs"] {
        ember::storage::register(scheme, Arc::new(open));
    }
}

/// The runtime that drives the object store's requests; Ember's threads wait on it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ember-store")
            .enable_all()
            .build()
            .expect("the object store's runtime starts")
    })
}

/// Runs `f` on the store's runtime and waits for it: callable from any thread, also one inside
/// another tokio runtime.
fn block<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the object store's runtime runs")
}

/// Opens the storage at `url` (a registered scheme), listing its root once.
fn open(url: &str, conf: &Conf) -> Result<Arc<dyn Storage>> {
    let scheme = ember::storage::scheme(url).unwrap_or_default().to_ascii_lowercase();
    let rest = &url[scheme.len() + 3..];
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad_url(url, "a bucket name after the scheme"));
    }
    let store = client(&scheme, bucket, conf).map_err(|e| Error::external(format!("opening {url}"), e))?;
    let s =
        ObjectStorage { store, url: url.trim_end_matches('/').to_owned(), prefix: prefix.trim_matches('/').to_owned() };
    s.probe()?;
    Ok(Arc::new(s))
}

fn bad_url(url: &str, expected: &str) -> Error {
    Error::Config { key: "storage URL".into(), value: url.into(), expected: expected.into() }
}

/// One client per bucket and configuration, shared by every storage opened on it.
fn client(scheme: &str, bucket: &str, conf: &Conf) -> object_store::Result<Arc<dyn ObjectStore>> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let setting = |k: &str| conf.get_or_default(k).unwrap_or_default().to_owned();
    let keys = ["fs.s3.endpoint", "fs.s3.region", "fs.s3.path_style", "fs.s3.access_key_id", "fs.s3.secret_access_key"];
    let key = format!("{scheme}://{bucket} {:?}", keys.map(setting));
    let mut clients = CLIENTS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = clients.get(&key) {
        return Ok(Arc::clone(c));
    }
    let millis = |k: &str| Duration::from_millis(conf.get_millis(k).unwrap_or(30_000));
    let options = object_store::ClientOptions::new()
        .with_timeout(millis("fs.request_timeout"))
        .with_connect_timeout(millis("fs.request_timeout").min(Duration::from_secs(5)));
    let retry = object_store::RetryConfig {
        retry_timeout: millis("fs.retry_timeout"),
        max_retries: 5,
        backoff: object_store::BackoffConfig::default(),
    };
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => {
            use object_store::aws::AmazonS3Builder;
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket).with_client_options(options);
            b = b.with_retry(retry);
            let mut endpoint = setting("fs.s3.endpoint");
            if endpoint.is_empty() {
                // The AWS environment's endpoint: plain HTTP is allowed for it too.
                endpoint =
                    std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT")).unwrap_or_default();
            }
            if !endpoint.is_empty() {
                b = b.with_allow_http(endpoint.starts_with("http://")).with_endpoint(endpoint);
            }
            let region = setting("fs.s3.region");
            if !region.is_empty() {
                b = b.with_region(region);
            }
            b = b.with_virtual_hosted_style_request(!conf.get_bool("fs.s3.path_style").unwrap_or(true));
            let (id, secret) = (setting("fs.s3.access_key_id"), setting("fs.s3.secret_access_key"));
            if !id.is_empty() {
                b = b.with_access_key_id(id);
            }
            if !secret.is_empty() {
                b = b.with_secret_access_key(secret);
            }
            Arc::new(b.build()?)
        }
        #[cfg(feature = "gcp")]
        "gs" => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(options)
                .with_retry(retry)
                .build()?,
        ),
        #[cfg(feature = "azure")]
        "az" | "abfs" | "abfss" => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(bucket)
                .with_client_options(options)
                .with_retry(retry)
                .build()?,
        ),
        // The authority (`namenode:port`) stands where a bucket does.
        #[cfg(feature = "hdfs")]
        "hdfs" | "viewfs" => Arc::new(
            hdfs_native_object_store::HdfsObjectStoreBuilder::new().with_url(format!("{scheme}://{bucket}")).build()?,
        ),
        other => {
            return Err(object_store::Error::NotSupported {
                source: format!("no object store for `{other}://` in this build of ember-store").into(),
            })
        }
    };
    clients.insert(key, Arc::clone(&store));
    Ok(store)
}

/// A [`Storage`] on an object store, rooted at a prefix of a bucket.
struct ObjectStorage {
    store: Arc<dyn ObjectStore>,
    /// The root as the user wrote it, without a trailing `/`.
    url: String,
    /// The root's key prefix in the bucket, without slashes at its ends ("" for the bucket).
    prefix: String,
}

impl ObjectStorage {
    fn path(&self, name: &str) -> Path {
        let name = name.trim_matches('/');
        match (self.prefix.is_empty(), name.is_empty()) {
            (true, _) => Path::from(name),
            (false, true) => Path::from(self.prefix.as_str()),
            (false, false) => Path::from(format!("{}/{name}", self.prefix)),
        }
    }

    /// The name of `location` relative to the root.
    fn name_of(&self, location: &Path) -> String {
        let full = location.as_ref();
        if self.prefix.is_empty() {
            return full.to_owned();
        }
        full.strip_prefix(&self.prefix).map_or(full, |r| r.trim_start_matches('/')).to_owned()
    }

    fn fail(&self, what: &str, name: &str, e: object_store::Error) -> Error {
        let at = if name.is_empty() { self.url.clone() } else { format!("{}/{name}", self.url) };
        Error::external(format!("{what} {at}"), e)
    }

    /// Lists the root once: the store answers, the bucket exists, the credentials are accepted.
    fn probe(&self) -> Result<()> {
        let (store, root) = (Arc::clone(&self.store), self.path(""));
        block(async move { store.list_with_delimiter(Some(&root)).await.map(drop) })
            .map_err(|e| self.fail("cannot reach", "", e))
    }

    /// Every object under `prefix` (recursively).
    fn objects_under(&self, prefix: &str) -> Result<Vec<Path>> {
        let (store, root) = (Arc::clone(&self.store), self.path(prefix));
        block(async move { store.list(Some(&root)).map_ok(|m| m.location).try_collect::<Vec<_>>().await })
            .map_err(|e| self.fail("listing", prefix, e))
    }
}

impl Storage for ObjectStorage {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn put(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let (store, path, payload) = (Arc::clone(&self.store), self.path(name), PutPayload::from(bytes.to_vec()));
        block(async move { store.put(&path, payload).await.map(drop) }).map_err(|e| self.fail("writing", name, e))
    }

    fn put_new(&self, name: &str, bytes: &[u8]) -> Result<bool> {
        let (store, path, payload) = (Arc::clone(&self.store), self.path(name), PutPayload::from(bytes.to_vec()));
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match block(async move { store.put_opts(&path, payload, opts).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(self.fail("creating", name, e)),
        }
    }

    fn get(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let (store, path) = (Arc::clone(&self.store), self.path(name));
        match block(async move { store.get(&path).await?.bytes().await }) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.fail("reading", name, e)),
        }
    }

    fn get_range(&self, name: &str, start: u64, len: usize) -> Result<Vec<u8>> {
        let (store, path) = (Arc::clone(&self.store), self.path(name));
        let read = block(async move {
            let size = store.head(&path).await?.size;
            if start >= size || len == 0 {
                return Ok(Vec::new());
            }
            let range = GetRange::Bounded(start..size.min(start + len as u64));
            let got = store.get_opts(&path, GetOptions { range: Some(range), ..Default::default() }).await?;
            Ok(got.bytes().await?.to_vec())
        });
        read.map_err(|e| self.fail("reading", name, e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<Entry>> {
        let (store, root) = (Arc::clone(&self.store), self.path(prefix));
        let listed = block(async move { store.list_with_delimiter(Some(&root)).await })
            .map_err(|e| self.fail("listing", prefix, e))?;
        let dirs = listed.common_prefixes.iter().map(|p| Entry {
            name: self.name_of(p),
            len: 0,
            modified_ms: None,
            is_dir: true,
        });
        let files = listed.objects.iter().map(|m| Entry {
            name: self.name_of(&m.location),
            len: m.size,
            modified_ms: u64::try_from(m.last_modified.timestamp_millis()).ok(),
            is_dir: false,
        });
        let mut out: Vec<Entry> =
            dirs.chain(files).filter(|e| !e.file_name().starts_with('.') && !e.name.is_empty()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, prefix: &str) -> Result<()> {
        let mut paths = self.objects_under(prefix)?;
        paths.push(self.path(prefix));
        let store = Arc::clone(&self.store);
        let deleted = block(async move {
            let locations = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
            let results: Vec<object_store::Result<Path>> = store.delete_stream(locations).collect().await;
            for r in results {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        });
        deleted.map_err(|e| self.fail("deleting", prefix, e))
    }

    fn rename_dir(&self, from: &str, to: &str) -> Result<()> {
        self.delete(to)?;
        let moves: Vec<(Path, Path)> = self
            .objects_under(from)?
            .into_iter()
            .map(|p| {
                let rest = self.name_of(&p);
                let rest = rest.strip_prefix(from.trim_matches('/')).unwrap_or(&rest).trim_start_matches('/');
                let target = self.path(&format!("{}/{rest}", to.trim_matches('/')));
                (p, target)
            })
            .collect();
        let store = Arc::clone(&self.store);
        block(async move {
            futures::stream::iter(moves)
                .map(|(a, b)| {
                    let store = Arc::clone(&store);
                    async move { store.copy(&a, &b).await }
                })
                .buffer_unordered(8)
                .try_collect::<Vec<()>>()
                .await
                .map(drop)
        })
        .map_err(|e| self.fail("copying into", to, e))?;
        self.delete(from)
    }
}
