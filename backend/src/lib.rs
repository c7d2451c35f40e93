//! Remote state backends: `backend "s3"` keeps the state, its backup and its journal as
//! objects in an S3 bucket and locks them with a conditional write to a DynamoDB table,
//! following Terraform's S3 backend (`LockID = "BUCKET/KEY"`, an `Info` JSON naming the
//! holder). The engine sees only its [`RemoteState`] trait.

use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use kup_engine::model::S3Backend;
use kup_engine::state::{LockInfo, RemoteObject, RemoteState};

/// The lock table's partition key, as Terraform names it.
const LOCK_ID: &str = "LockID";
/// The holder as JSON (`LockInfo`).
const INFO: &str = "Info";
/// The holder's lock id alone, so release and force-unlock can be conditional on it.
const HOLDER_ID: &str = "ID";
/// In the item `LockID = "BUCKET/KEY-md5"`: the MD5 (hex) of the state kup last wrote, as
/// Terraform records it, so a read served from an older copy is noticed, not trusted.
const DIGEST: &str = "Digest";
/// How often a state that does not match its digest is read again before giving up.
const STALE_READ_ATTEMPTS: u32 = 5;

/// The S3 state of one `backend "s3"` block.
pub struct S3State {
    spec: S3Backend,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl std::fmt::Debug for S3State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3State").field("spec", &self.spec).finish()
    }
}

/// The engine calls the backend synchronously (from its journal and state writes, which
/// run inside kup's async runtime); the SDK calls run on this runtime of their own, which
/// lives as long as the process, so no runtime is ever dropped or nested inside another.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kup-backend")
            .enable_all()
            .build()
            .expect("a tokio runtime for the state backend")
    })
}

/// Run `fut` on the backend's runtime and wait for it, from sync or async code alike.
fn block_on<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    runtime().spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().expect("the state backend's runtime answers")
}

impl S3State {
    /// Clients for the bucket and the table, with credentials from the default chain
    /// (environment, `profile`, SSO, instance role) like every AWS tool.
    pub fn connect(spec: &S3Backend) -> S3State {
        let spec = spec.clone();
        block_on(async move {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(region) = &spec.region {
                loader = loader.region(aws_config::Region::new(region.clone()));
            }
            if let Some(profile) = &spec.profile {
                loader = loader.profile_name(profile);
            }
            let shared = loader.load().await;
            let mut s3 = aws_sdk_s3::config::Builder::from(&shared);
            let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&shared);
            if let Some(endpoint) = &spec.endpoint {
                // S3-compatible servers (MinIO, moto, localstack) serve buckets as paths.
                s3 = s3.endpoint_url(endpoint).force_path_style(true);
                dynamodb = dynamodb.endpoint_url(endpoint);
            }
            S3State {
                s3: aws_sdk_s3::Client::from_conf(s3.build()),
                dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
                spec,
            }
        })
    }

    fn object_key(&self, object: RemoteObject) -> String {
        match object {
            RemoteObject::State => self.spec.key.clone(),
            RemoteObject::Backup => format!("{}.backup", self.spec.key),
            RemoteObject::Journal => format!("{}.journal", self.spec.key),
        }
    }

    fn lock_id(&self) -> String {
        format!("{}/{}", self.spec.bucket, self.spec.key)
    }

    fn get_object(&self, object: RemoteObject) -> Result<Option<Vec<u8>>, String> {
        let (s3, bucket, key) = (
            self.s3.clone(),
            self.spec.bucket.clone(),
            self.object_key(object),
        );
        let shown = format!("s3://{bucket}/{key}");
        block_on(async move {
            let out = match s3.get_object().bucket(&bucket).key(&key).send().await {
                Ok(out) => out,
                Err(e) => {
                    if e.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                        return Ok(None);
                    }
                    return Err(format!("cannot read {shown}: {}", DisplayErrorContext(&e)));
                }
            };
            // The SDK checks the body against the checksum stored with the object.
            out.body
                .collect()
                .await
                .map(|b| Some(b.into_bytes().to_vec()))
                .map_err(|e| format!("cannot read {shown}: {e}"))
        })
    }

    fn put_object(&self, object: RemoteObject, bytes: &[u8]) -> Result<(), String> {
        let (s3, bucket, key) = (
            self.s3.clone(),
            self.spec.bucket.clone(),
            self.object_key(object),
        );
        let body = bytes.to_vec();
        block_on(async move {
            // One PUT replaces the object whole, and S3 refuses a body that does not
            // match its SHA-256: a write is never half done nor damaged in transit.
            s3.put_object()
                .bucket(&bucket)
                .key(&key)
                .content_type(if key.ends_with(".journal") {
                    "application/x-ndjson"
                } else {
                    "application/json"
                })
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(ByteStream::from(body))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "cannot write s3://{bucket}/{key}: {}",
                        DisplayErrorContext(&e)
                    )
                })
        })
    }

    fn digest_id(&self) -> String {
        format!("{}-md5", self.lock_id())
    }

    fn read_digest(&self) -> Result<Option<String>, String> {
        let item = self.read_item(self.digest_id(), "the state's digest")?;
        Ok(item.and_then(|item| item.get(DIGEST).and_then(|v| v.as_s().ok()).cloned()))
    }

    /// The table's item `LockID = id`, read consistently (`what` names it in errors).
    fn read_item(
        &self,
        id: String,
        what: &'static str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, String> {
        let (db, table) = (self.dynamodb.clone(), self.spec.dynamodb_table.clone());
        block_on(async move {
            db.get_item()
                .table_name(&table)
                .key(LOCK_ID, AttributeValue::S(id))
                .consistent_read(true)
                .send()
                .await
                .map(|out| out.item)
                .map_err(|e| {
                    format!(
                        "cannot read {what} in DynamoDB table {table}: {}",
                        DisplayErrorContext(&e)
                    )
                })
        })
    }

    fn write_digest(&self, digest: &str) -> Result<(), String> {
        let (db, table) = (self.dynamodb.clone(), self.spec.dynamodb_table.clone());
        let item = string_item([(LOCK_ID, self.digest_id()), (DIGEST, digest.to_string())]);
        block_on(async move {
            db.put_item()
                .table_name(&table)
                .set_item(Some(item))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    format!(
                        "its digest could not be recorded in DynamoDB table {table}: {}",
                        DisplayErrorContext(&e)
                    )
                })
        })
    }

    fn lock_item(&self, info: &LockInfo) -> HashMap<String, AttributeValue> {
        string_item([
            (LOCK_ID, self.lock_id()),
            (
                INFO,
                serde_json::to_string(info).expect("lock info serializes"),
            ),
            (HOLDER_ID, info.id.clone()),
        ])
    }
}

impl RemoteState for S3State {
    fn url(&self) -> String {
        self.spec.url()
    }

    fn lock_location(&self) -> String {
        format!(
            "DynamoDB table {}, LockID {}",
            self.spec.dynamodb_table,
            self.lock_id()
        )
    }

    fn get(&self, object: RemoteObject) -> Result<Option<Vec<u8>>, String> {
        if object != RemoteObject::State {
            return self.get_object(object);
        }
        let mut attempts = 0;
        loop {
            let bytes = self.get_object(object)?;
            let Some(recorded) = self.read_digest()? else {
                return Ok(bytes);
            };
            let read = bytes.as_deref().map(md5_hex);
            if read.as_deref() == Some(recorded.as_str()) {
                return Ok(bytes);
            }
            // A write that stored the state but died before recording its digest leaves
            // the digest of the state before it, which is the backup: this state is newer.
            let backup = self.get_object(RemoteObject::Backup)?;
            if backup.as_deref().map(md5_hex).as_deref() == Some(recorded.as_str()) {
                return Ok(bytes);
            }
            attempts += 1;
            if attempts == STALE_READ_ATTEMPTS {
                return Err(format!(
                    "{} {} the digest kup recorded when it last wrote it ({recorded} in DynamoDB table {}, LockID {}), also after {attempts} reads: S3 is serving an older copy, or the object was replaced outside kup. If the object is what you want (restored or copied by hand), set that item's Digest to {} or delete the item",
                    self.url(),
                    match &read {
                        Some(md5) => format!("(MD5 {md5}) does not match"),
                        None => "does not exist, which does not match".into(),
                    },
                    self.spec.dynamodb_table,
                    self.digest_id(),
                    read.as_deref().unwrap_or("(none)"),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(400));
        }
    }

    fn put(&self, object: RemoteObject, bytes: &[u8]) -> Result<(), String> {
        self.put_object(object, bytes)?;
        if object == RemoteObject::State {
            self.write_digest(&md5_hex(bytes))
                .map_err(|e| format!("the state was written to {}, but {e}", self.url()))?;
        }
        Ok(())
    }

    fn try_lock(&self, info: &LockInfo) -> Result<Option<LockInfo>, String> {
        // The holder may release between our failed write and our read: then try again.
        for _ in 0..5 {
            let (db, table, item) = (
                self.dynamodb.clone(),
                self.spec.dynamodb_table.clone(),
                self.lock_item(info),
            );
            let taken = block_on(async move {
                let put = db
                    .put_item()
                    .table_name(&table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(LockID)")
                    .send()
                    .await;
                conditional(put, || {
                    format!("cannot lock the state in DynamoDB table {table}")
                })
            })?;
            if taken {
                return Ok(None);
            }
            if let Some(holder) = self.read_lock()? {
                return Ok(Some(holder));
            }
        }
        Err(format!(
            "cannot lock the state: the lock in {} keeps changing hands",
            self.lock_location()
        ))
    }

    fn read_lock(&self) -> Result<Option<LockInfo>, String> {
        let location = self.lock_location();
        let Some(item) = self.read_item(self.lock_id(), "the state lock")? else {
            return Ok(None);
        };
        let info = item.get(INFO).and_then(|v| v.as_s().ok());
        match info.and_then(|s| serde_json::from_str::<LockInfo>(s).ok()) {
            Some(info) => Ok(Some(info)),
            // Another tool's lock on the same key (Terraform's, say): still a lock.
            None => Ok(Some(LockInfo {
                id: item
                    .get(HOLDER_ID)
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_else(|| "(unreadable)".into()),
                operation: "unknown".into(),
                who: "unknown".into(),
                host: "unknown".into(),
                pid: 0,
                created: format!("unknown (the lock item in {location} is not kup's)"),
            })),
        }
    }

    fn unlock(&self, id: &str) -> Result<bool, String> {
        let (db, table, lock_id, id) = (
            self.dynamodb.clone(),
            self.spec.dynamodb_table.clone(),
            self.lock_id(),
            id.to_string(),
        );
        block_on(async move {
            let delete = db
                .delete_item()
                .table_name(&table)
                .key(LOCK_ID, AttributeValue::S(lock_id))
                .condition_expression("#id = :id")
                .expression_attribute_names("#id", HOLDER_ID)
                .expression_attribute_values(":id", AttributeValue::S(id))
                .send()
                .await;
            conditional(delete, || {
                format!("cannot release the state lock in DynamoDB table {table}")
            })
        })
    }
}

/// A conditional DynamoDB write: `Ok(true)` done, `Ok(false)` its condition did not hold.
fn conditional<O, E>(result: Result<O, E>, what: impl FnOnce() -> String) -> Result<bool, String>
where
    aws_sdk_dynamodb::Error: From<E>,
{
    match result.map_err(aws_sdk_dynamodb::Error::from) {
        Ok(_) => Ok(true),
        Err(aws_sdk_dynamodb::Error::ConditionalCheckFailedException(_)) => Ok(false),
        Err(e) => Err(format!("{}: {}", what(), DisplayErrorContext(&e))),
    }
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(bytes))
}

fn string_item<const N: usize>(pairs: [(&str, String); N]) -> HashMap<String, AttributeValue> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), AttributeValue::S(v)))
        .collect()
}
